"""The settings that building the event store and its loader reads, without pydantic.

`Settings` (config.py) has them all; the store process gets only these, as `StoreConfig`,
so it never imports pydantic and pydantic-settings: about 25 MB of a process whose memory
is the server's largest part (docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol


class StoreSettings(Protocol):
    """What `services.build_events`, `build_geo` and `build_loader` read."""

    @property
    def events_url(self) -> str: ...
    @property
    def spool_dir(self) -> Path: ...
    @property
    def queue_url(self) -> str: ...
    @property
    def queue_stream(self) -> str: ...
    @property
    def queue_claim_idle_seconds(self) -> float: ...
    @property
    def session_timeout_minutes(self) -> int: ...
    @property
    def dedup_window_hours(self) -> int: ...
    @property
    def duckdb_memory_limit(self) -> str: ...
    @property
    def late_event_hours(self) -> int: ...
    @property
    def geoip_country_path(self) -> str: ...
    @property
    def geoip_mmdb_path(self) -> str: ...
    @property
    def loader_batch_bytes(self) -> int: ...
    @property
    def loader_interval_seconds(self) -> float: ...
    @property
    def loader_max_delay_seconds(self) -> float: ...
    @property
    def log_level(self) -> str: ...


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """`StoreSettings` as plain values: what the web process sends its store process."""

    events_url: str
    spool_dir: Path
    queue_url: str
    queue_stream: str
    queue_claim_idle_seconds: float
    session_timeout_minutes: int
    dedup_window_hours: int
    duckdb_memory_limit: str
    late_event_hours: int
    geoip_country_path: str
    geoip_mmdb_path: str
    loader_batch_bytes: int
    loader_interval_seconds: float
    loader_max_delay_seconds: float
    log_level: str

    @classmethod
    def of(cls, settings: StoreSettings) -> StoreConfig:
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"spool_dir": str(self.spool_dir)}

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> StoreConfig:
        return cls(**values | {"spool_dir": Path(values["spool_dir"])})
