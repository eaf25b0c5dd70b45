"""The `cadlink` command line, run as a user would run it."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import duckdb
import pytest

from server_process import CADLINK, base_env, cli

COMMANDS = [
    ["--help"], ["serve", "--help"], ["worker", "--help"], ["init", "--help"], ["users", "create", "--help"],
    ["sites", "create", "--help"], ["sites", "list", "--help"], ["demo", "--help"],
    ["export", "--help"], ["gdpr", "--help"], ["gdpr", "export", "--help"],
    ["gdpr", "delete", "--help"], ["backup", "--help"], ["restore", "--help"],
]  # fmt: skip


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_every_command_has_help(args: list[str], tmp_path: Path) -> None:
    out = subprocess.run(
        [CADLINK, *args], env=base_env(tmp_path), capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "Usage:" in out.stdout


def test_sites_create_json_prints_the_site_with_its_id(tmp_path: Path) -> None:
    env = base_env(tmp_path / "d")
    site = cli(env, "sites", "create", "--domain", "Shop.Example.com", "--name", "My shop")
    assert set(site) >= {"id", "domain", "name", "allowedOrigins", "timezone"}
    assert site["domain"] == "shop.example.com"
    listed = cli(env, "sites", "list")
    assert [s["id"] for s in listed] == [site["id"]]


def test_bad_input_gives_a_clear_error_and_nonzero_exit(tmp_path: Path) -> None:
    env = base_env(tmp_path / "d")
    out = subprocess.run(
        [CADLINK, "sites", "create", "--domain", "not a domain"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode != 0
    assert "Error" in out.stderr
    out = subprocess.run(
        [CADLINK, "users", "create", "--email", "a@b.example", "--password", "short"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode != 0
    assert "password" in out.stderr.lower()


def test_users_create(tmp_path: Path) -> None:
    env = base_env(tmp_path / "d")
    user = cli(
        env,
        "users",
        "create",
        "--email",
        "ana@shop.example",
        "--password",
        "long-enough-1",
        "--role",
        "ANALYST",
    )
    assert user["role"] == "ANALYST"


def test_production_refuses_the_default_secret(tmp_path: Path) -> None:
    env = base_env(tmp_path / "d", CADLINK_ENV="production")
    env.pop("CADLINK_SECRET_KEY")
    out = subprocess.run(
        [CADLINK, "sites", "list"], env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode != 0
    assert "CADLINK_SECRET_KEY" in out.stderr


def test_an_empty_data_dir_is_refused_not_taken_as_the_working_directory(
    tmp_path: Path,
) -> None:
    env = base_env(tmp_path / "d", CADLINK_DATA_DIR="")
    out = subprocess.run(
        [CADLINK, "init"], env=env, cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert out.returncode != 0
    assert "CADLINK_DATA_DIR is empty" in out.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written where the command ran


def test_a_mistyped_setting_is_reported_not_silently_ignored(tmp_path: Path) -> None:
    env = base_env(
        tmp_path / "d",
        CADLINK_LOADER_BATCH_BYTE="1048576",  # one letter short of CADLINK_LOADER_BATCH_BYTES
        CADLINK_LOADER_ENRICH_PROCESS="false",  # removed
        CADLINK_TEST_ANYTHING="1",  # the test suite's own
    )
    out = subprocess.run(
        [CADLINK, "sites", "list", "--json"], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"  # the command still runs
    warnings = out.stderr.strip().splitlines()
    assert warnings == [
        "warning: CADLINK_LOADER_BATCH_BYTE (did you mean CADLINK_LOADER_BATCH_BYTES?) "
        "is not a setting and is ignored",
        "warning: CADLINK_LOADER_ENRICH_PROCESS is not a setting and is ignored",
    ]


def test_a_mistyped_setting_in_dotenv_is_reported(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CADLINK_SPOOL_FSINC=always\n")
    out = subprocess.run(
        [CADLINK, "sites", "list", "--json"], env=base_env(tmp_path / "d"), cwd=tmp_path,
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stderr.strip() == (
        "warning: CADLINK_SPOOL_FSINC (did you mean CADLINK_SPOOL_FSYNC?) "
        "is not a setting and is ignored"
    )


def test_init_with_admin_and_demo_is_idempotent(tmp_path: Path) -> None:
    data = tmp_path / "d"
    env = base_env(data)
    first = cli(env, "init", "--ensure-admin", "admin@cadlink.local", "--demo")
    assert first["admin"]["created"] is True
    password = (data / "initial-admin-password").read_text().strip()
    assert len(password) >= 12
    second = cli(env, "init", "--ensure-admin", "admin@cadlink.local", "--demo")
    assert second["admin"]["created"] is False
    assert second["demoSite"] == first["demoSite"]
    con = duckdb.connect(str(data / "events.duckdb"), read_only=True)
    n, days = con.execute(
        "SELECT count(*), count(DISTINCT CAST(ts AS DATE)) FROM analytics_events WHERE site_id = ?",
        [first["demoSite"]],
    ).fetchone() or (0, 0)
    sessions = con.execute("SELECT count(*) FROM sessions").fetchone()
    con.close()
    assert n > 30_000  # the second init did not add more
    assert days >= 29
    assert sessions is not None and sessions[0] > 1000
    # The demo's identified users reach the CRM with the traits their identify() sent.
    meta = sqlite3.connect(data / "meta.sqlite3")
    traits = [json.loads(t) for (t,) in meta.execute("SELECT traits FROM site_users")]
    meta.close()
    assert len(traits) > 5
    assert all(t.get("plan") in ("free", "pro") for t in traits)


def test_demo_for_a_given_site(tmp_path: Path) -> None:
    env = base_env(tmp_path / "d")
    site = cli(env, "sites", "create", "--domain", "d.example")
    out = cli(env, "demo", "--site", site["id"], "--days", "3", "--events", "5000")
    assert out["siteId"] == site["id"]
    assert 3000 < out["stored"] <= 5500
    missing = subprocess.run(
        [CADLINK, "demo", "--site", "nope"], env=env, capture_output=True, text=True, check=False
    )
    assert missing.returncode != 0
    assert "no site" in missing.stderr


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("amqp://guest@127.0.0.1/", "must be a Redis URL"),
        ("redis://127.0.0.1:6379/0?protocol=3", "RESP3 is not supported"),
    ],
)
def test_a_queue_url_that_cannot_work_stops_the_command(
    tmp_path: Path, url: str, says: str
) -> None:
    env = base_env(tmp_path / "d", CADLINK_QUEUE_URL=url)
    out = subprocess.run([CADLINK, "worker"], env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert "CADLINK_QUEUE_URL" in out.stderr and says in out.stderr


def test_init_shows_only_a_password_it_set_for_that_account(tmp_path: Path) -> None:
    env = base_env(tmp_path / "d")

    def init(*args: str) -> str:
        out = subprocess.run(
            [CADLINK, "init", *args], env=env, capture_output=True, text=True, check=True
        )
        return out.stdout

    first = init("--ensure-admin", "admin@cadlink.local")
    saved = (tmp_path / "d" / "initial-admin-password").read_text().strip()
    assert f"log in as admin@cadlink.local with password {saved}" in first
    assert f"with password {saved}" in init("--ensure-admin", "admin@cadlink.local")  # its own
    cli(env, "users", "create", "--email", "ops@x.example", "--password", "ops-own-password",
        "--role", "ADMIN")  # fmt: skip
    # The saved password is the first admin's: never shown as another account's.
    for args in ([], ["--admin-password", "other-password"]):
        out = init("--ensure-admin", "ops@x.example", *args)
        assert "log in" not in out and saved not in out
        assert "ops@x.example exists (ADMIN) and keeps its password" in out
    given = init("--ensure-admin", "new@x.example", "--admin-password", "given-password")
    assert "log in as new@x.example with password given-password" in given
    assert (tmp_path / "d" / "initial-admin-password").read_text().strip() == saved
