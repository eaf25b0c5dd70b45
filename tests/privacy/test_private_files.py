"""What cadlink writes is readable by its own user only: the data dir holds the daily salts,
password hashes and events; backups and exports hold the same."""

from __future__ import annotations

import subprocess
from pathlib import Path

from server_process import CADLINK, base_env, cli


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_the_data_dir_and_what_cadlink_writes_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = base_env(data)
    site = cli(env, "sites", "create", "--domain", "private.example")["id"]
    cli(env, "demo", "--site", site, "--days", "1", "--events", "50")
    assert _mode(data) == 0o700
    for name in ("meta.sqlite3", "events.duckdb"):
        assert _mode(data / name) == 0o600, name
    for command in (["backup", "-o", str(tmp_path / "b.tar")],
                    ["export", "--site", site, "-o", str(tmp_path / "e.csv")]):  # fmt: skip
        done = subprocess.run([CADLINK, *command], env=env, capture_output=True, check=False)
        assert done.returncode == 0, done.stderr
    assert _mode(tmp_path / "b.tar") == 0o600
    assert _mode(tmp_path / "e.csv") == 0o600


def test_an_installation_made_readable_to_others_is_made_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    env = base_env(data)
    cli(env, "sites", "list")
    assert _mode(data) == 0o700
