"""What the `cadlink` command line says when something is wrong: one line naming the problem
(never a traceback, never a secret) and a non-zero exit."""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb
import pytest

from server_process import CADLINK, base_env, cli, free_port


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CADLINK, *args], env=env, capture_output=True, text=True, check=False, timeout=120
    )


def error_line(out: subprocess.CompletedProcess[str]) -> str:
    """The command's only line on stderr, checked to be an error (warnings aside)."""
    assert out.returncode == 1, out.stderr
    lines = [line for line in out.stderr.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("Error: "), out.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--ensure-admin", "notanemail"], "not a valid email address"),
        (["--ensure-admin", "a@b.example", "--admin-password", "short"], "password must be"),
    ],
    ids=["email", "password"],
)
def test_init_refuses_a_bad_admin_in_one_line(tmp_path: Path, args: list[str], says: str) -> None:
    assert says in error_line(run(base_env(tmp_path / "d"), "init", *args))


COMMANDS = [
    ["init"], ["sites", "list"], ["users", "create", "--email", "a@b.example", "--password", "x" * 9],
    ["serve", "--port", "9509"], ["export", "--site", "s"], ["gdpr", "export", "--site", "s", "--user-id", "u"],
]  # fmt: skip


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_data_dir_that_is_a_file_is_named(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "d").write_text("")
    line = error_line(run(base_env(tmp_path / "d"), *args))
    assert "CADLINK_DATA_DIR" in line and "it is a file" in line


def test_a_data_dir_below_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    line = error_line(run(base_env(tmp_path / "f" / "d"), "sites", "list"))
    assert f"cannot use {tmp_path / 'f' / 'd'} as the data dir (CADLINK_DATA_DIR)" in line


def test_a_metadata_database_that_cannot_be_opened_is_named(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir(mode=0o700)  # private already: no warning that it was made so
    (tmp_path / "d" / "meta.sqlite3").mkdir()  # SQLite cannot open a directory
    line = error_line(run(base_env(tmp_path / "d"), "sites", "list"))
    assert "cannot open the metadata database sqlite:///" in line
    assert "unable to open database file" in line


def test_an_unreachable_postgresql_is_named_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql://cadlink:pw-s3cret@127.0.0.1:{free_port()}/meta"  # nobody listens
    line = error_line(run(base_env(tmp_path / "d", CADLINK_DATABASE_URL=url), "sites", "list"))
    assert "cannot open the metadata database" in line and "cadlink:***@127.0.0.1" in line
    assert "pw-s3cret" not in line


def test_a_worker_names_an_unreachable_event_store_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql://cadlink:pw-s3cret@127.0.0.1:{free_port()}/events"  # nobody listens
    env = base_env(
        tmp_path / "d",
        CADLINK_EVENTS_URL=url,
        CADLINK_QUEUE_URL="redis://127.0.0.1:6379/0",  # not reached: the store fails first
    )
    line = error_line(run(env, "worker"))
    assert f"cannot open the event store ({url.replace('pw-s3cret', '***')})" in line
    assert "pw-s3cret" not in line


@pytest.mark.parametrize("args", [["init"], ["init", "--demo"]], ids=" ".join)
def test_init_while_another_process_holds_the_event_store(tmp_path: Path, args: list[str]) -> None:
    env = base_env(tmp_path / "d")
    cli(env, "init")
    # What `cadlink serve` with CADLINK_STORE_PROCESS=false holds; with its store process,
    # init asks that process instead (and the demo's load says to stop the server).
    held = duckdb.connect(str(tmp_path / "d" / "events.duckdb"))
    try:
        line = error_line(run(env, *args))
    finally:
        held.close()
    assert "is in use by `cadlink serve`" in line and "stop it" in line


@pytest.mark.parametrize(
    ("setting", "value", "says", "secret"),
    [
        ("PORT", "abc", "CADLINK_PORT: Input should be a valid integer", "abc"),
        ("PORT", "74873", "CADLINK_PORT: Input should be less than or equal to 65535", "74873"),
        ("QUEUE_URL", "redis://:pw123@x/0?protocol=3", "CADLINK_QUEUE_URL: leave", "pw123"),
        ("SECRET_KEY", "hunter2-short-secret", "CADLINK_SECRET_KEY must be set", "hunter2"),
    ],
    ids=["port", "port-range", "queue-url", "secret-key"],
)
def test_a_bad_setting_is_one_line_naming_it_without_its_value(
    tmp_path: Path, setting: str, value: str, says: str, secret: str
) -> None:
    env = base_env(tmp_path / "d", CADLINK_ENV="production", **{f"CADLINK_{setting}": value})
    line = error_line(run(env, "sites", "list"))
    assert line.startswith(f"Error: {says}")
    assert secret not in line


def test_each_bad_setting_has_its_line(tmp_path: Path) -> None:
    env = base_env(tmp_path / "d", CADLINK_PORT="x", CADLINK_SPOOL_FSYNC="sometimes")
    out = run(env, "sites", "list")
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["Error", "CADLINK_SPOOL_FSYNC"]
    assert lines[0].startswith("Error: CADLINK_PORT: ")
    assert "sometimes" not in out.stderr


@pytest.mark.parametrize(
    "args",
    [["serve", "--port", "74873"], ["serve", "--port", "0"], ["worker", "--metrics-port", "0"]],
    ids=" ".join,
)
def test_a_port_out_of_range_is_refused(tmp_path: Path, args: list[str]) -> None:
    # Before: uvicorn took 74873 modulo 65536 (9337), and `--port 0` fell back to CADLINK_PORT.
    out = run(base_env(tmp_path / "d", CADLINK_PORT="9509"), *args)
    assert out.returncode == 2
    assert "is not in the range 1<=x<=65535" in out.stderr
    assert not (tmp_path / "d").exists()  # refused before anything started
