"""Every setting, declared once with its default and meaning.

`docs/configuration.md` is checked against this class by a test, so a setting
cannot exist without being documented.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET_KEY = "insecure-development-key-change-me"  # noqa: S105 - refused in production
# Names the test suite and the benchmarks read themselves: not settings, and not misspelt.
_NOT_SETTINGS = ("CADLINK_TEST_", "CADLINK_BENCH_")


class Settings(BaseSettings):
    """Typed configuration read from `CADLINK_*` environment variables and `.env`."""

    model_config = SettingsConfigDict(
        env_prefix="CADLINK_", env_file=".env", extra="ignore", validate_default=True
    )

    data_dir: Path = Field(
        Path("./cadlink-data"), description="Directory holding all embedded data."
    )
    database_url: str = Field(
        "",
        description="Metadata database. Default `sqlite:///<data dir>/meta.sqlite3`; or `postgresql://…`.",
    )
    events_url: str = Field(
        "",
        description="Event store. Default `duckdb:///<data dir>/events.duckdb`.",
    )
    queue_url: str = Field(
        "",
        description="Durable buffer. Unset: append-only spool files in the data dir; or `redis://…`.",
    )
    secret_key: str = Field(
        DEFAULT_SECRET_KEY,
        description="Signs access tokens. Must be set (32+ characters) when `env` is `production`.",
    )
    env: Literal["development", "production", "test"] = Field(
        "development", description="`production` refuses to start with the default secret key."
    )
    trusted_proxies: str = Field(
        "127.0.0.1,::1",
        description="Comma-separated peers whose `X-Forwarded-For` header is believed.",
    )
    host: str = Field("127.0.0.1", description="Address `cadlink serve` binds to.")
    port: int = Field(
        8000, ge=1, le=65535, description="Port `cadlink serve` listens on (1-65535)."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Level of the structured JSON log."
    )

    # Ingest limits.
    max_body_bytes: int = Field(262_144, description="Largest collect request body (413 above it).")
    max_batch_events: int = Field(100, description="Most events accepted in one request.")
    rate_limit_per_minute: int = Field(
        1200,
        description="Collect requests per client IP per minute (429 above it); 0 disables. "
        "Counted by each server process: behind a load balancer spreading a client over N "
        "servers, it may send N times this.",
    )
    rate_limit_burst: int = Field(200, description="Requests a client IP may send at once.")
    site_refresh_seconds: float = Field(
        5.0, description="How often the in-memory site map is reloaded from the metadata store."
    )

    # Durable buffer and loader.
    spool_max_bytes: int = Field(
        1_073_741_824, description="Unloaded spool size at which collect answers 503."
    )
    spool_segment_bytes: int = Field(
        16_777_216,
        description="Size at which a spool segment file is sealed and a new one started.",
    )
    spool_fsync: Literal["never", "interval", "always"] = Field(
        "interval",
        description="`always` fsyncs before every 2xx; `interval` once a second; `never` leaves it "
        "to the OS. Every mode survives `kill -9` of the server.",
    )
    queue_stream: str = Field(
        "cadlink:events",
        description="Redis stream that holds the queue (server mode, `CADLINK_QUEUE_URL`); its "
        "loaders share it as the consumer group `cadlink-loaders`.",
    )
    queue_max_entries: int = Field(
        500_000,
        description="Unloaded queue entries (one per accepted request and site) at which "
        "collect answers 503 (server mode). About 1 KB of Redis memory each.",
    )
    queue_claim_idle_seconds: float = Field(
        60.0,
        description="How long queue entries taken by a loader that stopped answering (a worker "
        "that died) wait before another loader claims them (server mode).",
    )
    loader_batch_bytes: int = Field(
        16_777_216,
        description="Most buffered bytes the loader takes into one batch when that much is "
        "waiting (about 20,000 single-event requests). Larger batches share each batch's fixed "
        "cost (about two dozen statements; the duplicate check reads the batch's time span "
        "once); the loader holds one batch, and DuckDB its parsed rows, in memory.",
    )
    loader_interval_seconds: float = Field(
        0.2,
        description="How often a loader that has caught up looks for new events (one with a "
        "full batch waiting never waits): about the longest an accepted event waits to be "
        "stored while traffic is light.",
    )
    loader_max_delay_seconds: float = Field(
        1.0,
        description="Under steady load, how long a loader that has caught up may wait between "
        "batches so that it writes fewer, larger ones (it waits five times as long as its last "
        "batch took, from `CADLINK_LOADER_INTERVAL_SECONDS` up to this): the longest an "
        "accepted event waits to be stored when the server is busy.",
    )
    store_process: bool = Field(
        True,
        description="`cadlink serve` runs the loader, and the DuckDB event store it writes, in "
        "a child process: their work then takes nothing from the request path's interpreter, "
        "and a crash in the store restarts it while the collect endpoint keeps accepting. "
        "`false`: one process.",
    )
    duckdb_memory_limit: str = Field(
        "256MB",
        description="Most memory DuckDB may use for its caches and queries (e.g. `1GB`) while "
        "reports or bulk loads run, and for a minute after the last one; beyond it, it evicts "
        "cached blocks and spills large operations to disk. The loader alone works within "
        "64MB (or this, if smaller). 256MB runs the 30-day dashboard at 10 M and 100 M events "
        "and keeps the server small; raise it on a large machine for faster reports on large "
        "sites. Empty: DuckDB's default, 80% of the machine's memory.",
    )
    dedup_window_hours: int = Field(
        1,
        description="A repeated `eventId` is recognised when its event time is within this many "
        "hours of the stored one (retries resend the original timestamp). Each loader batch "
        "reads the stored events within this window of its events' times (all but the batch's "
        "moment are skipped for ids that begin with the time, as the tracker's do): with other "
        "ids at thousands of events a second, `0` (the same minute only; a resend with its "
        "original timestamp is still found) keeps the check cheap.",
    )
    late_event_hours: int = Field(
        72, description="Oldest client timestamp believed; older events are stamped on arrival."
    )

    # Sessions and privacy.
    session_timeout_minutes: int = Field(30, description="Inactivity that ends a session.")
    salt_retention_hours: int = Field(
        48, description="Age after which a daily visitor salt is deleted."
    )
    geoip_country_path: str = Field(
        "",
        description="Country database in Tor/IPFire format (Debian `tor-geoipdb`). "
        "Default: `/usr/share/tor/geoip` when present.",
    )
    geoip_mmdb_path: str = Field(
        "", description="Optional MaxMind/DB-IP `.mmdb` file for region and city."
    )

    # Accounts.
    access_token_minutes: int = Field(15, description="Lifetime of an access token.")
    refresh_token_days: int = Field(30, description="Lifetime of a refresh token.")

    @field_validator("data_dir", mode="before")
    @classmethod
    def _data_dir_named(cls, value: object) -> object:
        # An empty CADLINK_DATA_DIR (a shell variable that was never set) would put the
        # databases and the spool in whatever directory the command runs from.
        if isinstance(value, str) and not value.strip():
            raise ValueError(
                "CADLINK_DATA_DIR is empty: unset it for ./cadlink-data, or name a directory"
            )
        return value

    @field_validator("queue_url")
    @classmethod
    def _queue_is_redis(cls, value: str) -> str:
        if not value:
            return value
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                "CADLINK_QUEUE_URL must be a Redis URL (redis://, rediss:// or unix://), or "
                "unset for the embedded spool"
            )
        protocol = parse_qs(urlsplit(value).query).get("protocol")
        if protocol and protocol != ["2"]:
            # The queue's replies are read in RESP2's shapes (ingest/buffer/redis_stream.py).
            raise ValueError("CADLINK_QUEUE_URL: leave `protocol` unset (RESP3 is not supported)")
        return value

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'meta.sqlite3'}"
        if not self.events_url:
            self.events_url = f"duckdb:///{self.data_dir / 'events.duckdb'}"
        if self.env == "production" and (
            self.secret_key == DEFAULT_SECRET_KEY or len(self.secret_key) < 32
        ):
            raise ValueError(
                "CADLINK_SECRET_KEY must be set to a random value of 32+ characters in production"
            )
        return self

    @property
    def trusted_proxy_set(self) -> frozenset[str]:
        return frozenset(p.strip() for p in self.trusted_proxies.split(",") if p.strip())

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"


def unknown_settings(environ: Mapping[str, str]) -> list[str]:
    """The `CADLINK_*` names in `environ` that are no setting (a typo, or a setting that was
    removed), each with the closest setting's name when one is close. `Settings` itself
    ignores them, so without this a mistyped variable would silently leave its default."""
    fields = [field.upper() for field in Settings.model_fields]
    found = []
    for key in sorted(environ):
        if not key.startswith("CADLINK_") or key[8:] in fields or key.startswith(_NOT_SETTINGS):
            continue
        # Compared without the common prefix, which would make every name look close.
        close = difflib.get_close_matches(key[8:], fields, n=1, cutoff=0.8)
        found.append(f"{key} (did you mean CADLINK_{close[0]}?)" if close else key)
    return found


def settings_errors(error: ValidationError) -> list[str]:
    """One line per bad setting, `CADLINK_NAME: what is wrong`. Never the value given: it may
    be a secret (a key, a password inside a URL), and pydantic's own text quotes it."""
    lines = []
    for item in error.errors(include_url=False, include_input=False):
        message = str(item["msg"]).removeprefix("Value error, ")
        loc = item["loc"]
        env = f"CADLINK_{str(loc[0]).upper()}" if loc else ""
        # Our validators' messages already begin with the name (or, from the model, name it).
        lines.append(f"{env}: {message}" if env and not message.startswith(env) else message)
    return lines
