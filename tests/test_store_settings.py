"""The store process's settings travel as a `StoreConfig`: every value it reads, unchanged."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from cadlink.config import Settings
from cadlink.store_settings import StoreConfig, StoreSettings


def test_a_store_config_carries_every_store_setting_through_json(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, secret_key="s" * 40, env="test", duckdb_memory_limit="96MB",
        loader_batch_bytes=1 << 20, loader_interval_seconds=0.5, log_level="debug",
        session_timeout_minutes=45, geoip_mmdb_path=str(tmp_path / "city.mmdb"),
    )  # fmt: skip
    config = StoreConfig.of(settings)
    wanted = {
        name for name in vars(StoreSettings) if not name.startswith("_")
    }  # the protocol's properties
    assert {f.name for f in fields(StoreConfig)} == wanted
    for name in wanted:
        assert getattr(config, name) == getattr(settings, name), name
    assert StoreConfig.from_json(json.loads(json.dumps(config.to_json()))) == config
    assert config.spool_dir == settings.spool_dir
    assert config.events_url == settings.events_url
