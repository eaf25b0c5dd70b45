"""Builds every long-lived component from `Settings`, in one place, on demand.

`create_app` and the CLI both use this; nothing here runs at import time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

from cadlink.ingest.buffer import Backlog, BufferWriter, SpoolReader, SpoolWriter
from cadlink.ingest.buffer.spool import SUFFIX as SPOOL_SUFFIX
from cadlink.ingest.metrics import IngestMetrics
from cadlink.ingest.salts import SaltRing
from cadlink.ingest.sites import SiteDirectory, SiteInfo
from cadlink.pipeline.loader import Loader, LoaderBase, LoaderControl, LoaderOptions
from cadlink.private_files import make_private
from cadlink.store.events import EventStore, open_event_store
from cadlink.store.events.staged import Identity

if TYPE_CHECKING:
    # Loaded only where they are used. The parsers and DuckDB: where the loader runs (the
    # store process of `cadlink serve`), never in the web process. The metadata store and
    # accounts: never in the store process (it hands identified users to the web process),
    # which so loads neither SQLAlchemy nor the password hasher, nor pydantic: it reads its
    # settings as `StoreSettings`; nor asyncio, with ssl about 7 MB (it runs no event loop).
    import asyncio
    from collections.abc import Callable

    from cadlink.auth.passwords import PasswordHasher
    from cadlink.auth.service import AuthService
    from cadlink.config import Settings
    from cadlink.ingest.buffer.redis_stream import RedisStreamReader
    from cadlink.ingest.enrich.geo import GeoLocator
    from cadlink.ingest.enrich.useragent import UserAgentParser
    from cadlink.pipeline.enrichment import Enricher
    from cadlink.store.meta.repository import MetaStore
    from cadlink.store_settings import StoreSettings

log = logging.getLogger(__name__)


def build_meta(settings: Settings) -> MetaStore:
    """The metadata store, migrated, after creating the data dir; `DatabaseUnavailable`, a
    one-line reason, when either cannot be created or opened."""
    from cadlink.store.meta.db import DatabaseUnavailable, make_engine, migrate
    from cadlink.store.meta.repository import MetaStore

    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        # FileExistsError (a file has its name) and NotADirectoryError say it vaguely.
        reason = "it is a file" if settings.data_dir.is_file() else e.strerror
        raise DatabaseUnavailable(
            f"cannot use {settings.data_dir} as the data dir (CADLINK_DATA_DIR): {reason}"
        ) from e
    make_private(settings.data_dir)  # before the databases are created in it
    engine = make_engine(settings.database_url)
    migrate(engine)
    return MetaStore(engine)


def build_auth(
    settings: Settings, meta: MetaStore, hasher: PasswordHasher | None = None
) -> AuthService:
    from cadlink.auth.passwords import PasswordHasher
    from cadlink.auth.service import AuthService

    return AuthService(
        meta,
        hasher or PasswordHasher(),
        settings.secret_key,
        access_minutes=settings.access_token_minutes,
        refresh_days=settings.refresh_token_days,
    )


@lru_cache(maxsize=4)
def _geo(country_path: str | None, mmdb_path: str | None) -> GeoLocator:
    from cadlink.ingest.enrich.geo import GeoLocator
    from cadlink.store.events.staged import PARSER_CACHE_ENTRIES

    return GeoLocator(country_path, mmdb_path, cache_size=PARSER_CACHE_ENTRIES)


@lru_cache(maxsize=1)
def _ua_parser() -> UserAgentParser:
    from cadlink.ingest.enrich.useragent import UserAgentParser
    from cadlink.store.events.staged import PARSER_CACHE_ENTRIES

    return UserAgentParser(cache_size=PARSER_CACHE_ENTRIES)


def build_geo(settings: StoreSettings) -> GeoLocator:
    """The geo database, loaded once per process (about 2 s and 60 MB for the Tor files)."""
    return _geo(settings.geoip_country_path or None, settings.geoip_mmdb_path or None)


def build_ua_parser() -> UserAgentParser:
    """The user-agent parser with its compiled rules and cache, built once per process."""
    return _ua_parser()


def build_events(settings: StoreSettings) -> EventStore:
    return open_event_store(
        settings.events_url,
        session_timeout_minutes=settings.session_timeout_minutes,
        dedup_window_hours=settings.dedup_window_hours,
        duckdb_memory_limit=settings.duckdb_memory_limit,
    )


def open_events_waiting(settings: StoreSettings, wait: float = 15.0) -> EventStore:
    """`build_events`, waiting up to `wait` seconds while another process still holds the
    DuckDB file (a store process that is exiting)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return build_events(settings)
        except Exception as e:
            if "lock" not in str(e).lower() or time.monotonic() >= deadline:
                raise
        time.sleep(0.2)


def build_enricher(settings: StoreSettings) -> Enricher:
    """The loader's enrichment, with the parsers and geo database of this process."""
    from cadlink.pipeline.enrichment import Enricher

    return Enricher(build_ua_parser(), build_geo(settings), settings.late_event_hours)


def build_loader(
    settings: StoreSettings,
    events: EventStore,
    backlog: Backlog,
    on_identities: Callable[[list[Identity]], None] | None = None,
    *,
    spool_first: bool = False,
) -> LoaderBase:
    """The loader of the buffer in `settings` (the spool in the data dir, or the Redis
    queue), with its parsers (loaded here, once; the loader asks them only about values it
    has not seen before: store/events/staging.py). `on_identities` receives the identified
    users of each batch (`identity_recorder`). `spool_first` (a server's loader): with a
    queue configured, first load what the data dir's spool still holds (`drain_spool`)."""
    enricher = build_enricher(settings)
    options = LoaderOptions(
        batch_bytes=settings.loader_batch_bytes,
        interval=settings.loader_interval_seconds,
        max_delay=settings.loader_max_delay_seconds,
        on_identities=on_identities,
    )
    if settings.queue_url:
        from cadlink.ingest.buffer.redis_stream import RedisStreamReader, connect
        from cadlink.pipeline.stream_loader import StreamLoader

        if spool_first:
            drain_spool(settings, events, enricher, options)
        reader = RedisStreamReader(
            connect(settings.queue_url),
            settings.queue_stream,
            claim_idle_ms=int(settings.queue_claim_idle_seconds * 1000),
        )
        if events.engine == "duckdb":
            _warn_if_shared(reader)
        return StreamLoader(reader, events, enricher, **options)
    return Loader(SpoolReader(settings.spool_dir), events, enricher, backlog=backlog, **options)


def _warn_if_shared(reader: RedisStreamReader) -> None:
    """A server loading the queue into its own DuckDB file should be its only loader: with
    another, each stores part of the events (docs/deployment.md)."""
    import redis

    try:
        others = reader.others()
    except redis.RedisError:
        return  # the loader says so itself once it tries to read
    if others:
        log.warning(
            "another loader reads this queue while this server loads it into its own DuckDB "
            "file: the events will be split between their stores; several servers need a "
            "shared event store (CADLINK_EVENTS_URL=postgresql://…)",
            extra={"others": others, "stream": reader.stream},
        )


def drain_spool(
    settings: StoreSettings,
    events: EventStore,
    enricher: Enricher,
    options: LoaderOptions | None = None,
) -> int:
    """Load what the data dir's spool still holds into `events`; returns events stored.

    A server switched to the Redis queue (`CADLINK_QUEUE_URL`) no longer writes its spool,
    but events it accepted before may still wait there: they are loaded before anything
    else, so that moving from embedded to server mode loses none."""
    if not any(settings.spool_dir.glob(f"*{SPOOL_SUFFIX}")):
        return 0  # (a reader would make the spool's directory and id)
    stored = Loader(SpoolReader(settings.spool_dir), events, enricher, **(options or {})).drain()
    log.info(
        "loaded what the spool held before the queue was configured",
        extra={"events": stored, "spool": str(settings.spool_dir)},
    )
    return stored


def load_spool(settings: StoreSettings, events: EventStore, meta: MetaStore) -> int:
    """Load what the data dir's spool holds, with its identified users, before a command
    that changes stored data (a data subject's erasure); returns events stored. Only with
    the server stopped: its store process owns the spool's reading."""
    if not any(settings.spool_dir.glob(f"*{SPOOL_SUFFIX}")):
        return 0
    enricher = build_enricher(settings)
    reader = SpoolReader(settings.spool_dir)
    return Loader(reader, events, enricher, on_identities=identity_recorder(meta)).drain()


def build_writer(settings: Settings, backlog: Backlog) -> BufferWriter:
    """The collect endpoint's side of the buffer: spool files, or the Redis queue."""
    if settings.queue_url:
        from cadlink.ingest.buffer.redis_stream import RedisStreamWriter, connect

        return RedisStreamWriter(
            connect(settings.queue_url, retries=0),
            settings.queue_stream,
            max_entries=settings.queue_max_entries,
        )
    return SpoolWriter(
        settings.spool_dir,
        segment_bytes=settings.spool_segment_bytes,
        max_backlog_bytes=settings.spool_max_bytes,
        fsync=settings.spool_fsync,
        backlog=backlog,
    )


def loads_here(settings: StoreSettings) -> bool:
    """Whether `cadlink serve` loads its buffer: always its spool; a shared queue only when
    the event store is the embedded DuckDB file (one writer: this server's). Otherwise the
    queue's loaders are `cadlink worker` processes."""
    from cadlink.pipeline.store_status import embedded

    return not settings.queue_url or embedded(settings)


def identity_recorder(meta: MetaStore) -> Callable[[list[Identity]], None]:
    """Records identified users as site users of the metadata store (the CRM's list)."""

    def record(identities: list[Identity]) -> None:
        for ident in identities:
            site = meta.get_site(ident.site_id)
            if site is not None:
                meta.upsert_site_user(site.id, ident.user_id, ident.traits, ident.seen_at)

    return record


def site_infos(meta: MetaStore) -> list[SiteInfo]:
    return [
        SiteInfo(
            public_id=s.public_id,
            domain=s.domain,
            allowed_origins=frozenset(s.allowed_origins),
            respect_dnt=s.respect_dnt,
        )
        for s in meta.list_sites()
    ]


@dataclass
class Services:
    """Everything a running server holds."""

    settings: Settings
    meta: MetaStore
    events: EventStore
    auth: AuthService
    sites: SiteDirectory
    salts: SaltRing
    backlog: Backlog
    writer: BufferWriter
    loader: LoaderControl  # the loader, or the store process that runs it
    ingest_metrics: IngestMetrics = field(default_factory=IngestMetrics)
    started_at: float = 0.0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        settings: Settings,
        hasher: PasswordHasher | None = None,
        *,
        store_process: bool = False,
    ) -> Services:
        """Open every store and build every component; `hasher` lets tests use cheap hashes.

        `store_process`: run the loader (and an embedded event store, which it then owns) in
        a child process, as `cadlink serve` does (pipeline/store_process.py); it is started
        here, so a store that cannot be opened fails the build. Otherwise everything runs in
        this process, as the tests and command-line tools use it."""
        meta = build_meta(settings)
        backlog = Backlog()
        writer = build_writer(settings, backlog)
        loader: LoaderControl
        if not loads_here(settings):
            from cadlink.ingest.buffer.redis_stream import connect
            from cadlink.pipeline.stream_loader import QueueLoaders

            events = build_events(settings)
            if SpoolReader(settings.spool_dir).segments():  # accepted before the queue was set
                options = LoaderOptions(on_identities=identity_recorder(meta))
                drain_spool(settings, events, build_enricher(settings), options)
            loader = QueueLoaders(connect(settings.queue_url), settings.queue_stream)
        elif store_process:
            from cadlink.pipeline.store_process import StoreProcess
            from cadlink.pipeline.store_status import embedded

            keeper = StoreProcess(settings, backlog, on_identities=identity_recorder(meta))
            try:
                keeper.start()
            except BaseException:
                keeper.stop()
                writer.close()
                raise
            # An embedded store is the child's to open: read it through the child. A server
            # store is shared: read it directly (the child only loads).
            events = keeper.client if embedded(settings) else build_events(settings)
            loader = keeper
        else:
            events = build_events(settings)
            loader = build_loader(
                settings, events, backlog, identity_recorder(meta), spool_first=True
            )

        async def load_sites() -> list[SiteInfo]:
            import asyncio

            return await asyncio.to_thread(site_infos, meta)

        services = cls(
            settings=settings,
            meta=meta,
            events=events,
            auth=build_auth(settings, meta, hasher),
            sites=SiteDirectory(load_sites),
            salts=SaltRing(),
            backlog=backlog,
            writer=writer,
            loader=loader,
        )
        services.refresh_now()
        return services

    def refresh_now(self) -> None:
        """Load sites and salts synchronously (start-up, before the first request)."""
        self.sites.replace(site_infos(self.meta))
        self.rotate_salts(datetime.now(UTC))

    def rotate_salts(self, now: datetime) -> None:
        """Ensure today's and tomorrow's salts; delete those older than the retention.

        A salt's age counts from the start of its UTC day, so with 48 h retention yesterday's
        salt is gone by the end of today and nothing can link a visitor across days after it.
        Then, as the same periodic clean-up, delete failed logins older than the login
        throttle's window and refresh tokens past their expiry (`AuthService.prune`).
        """
        retention = timedelta(hours=self.settings.salt_retention_hours)
        # delete_salts_older_than removes days that *ended* by the cutoff.
        self.meta.delete_salts_older_than(now - retention + timedelta(days=1))
        self.salts.replace(self.meta.ensure_salts(now.date()))
        self.auth.prune(now)

    async def _refresh_loop(self) -> None:
        import asyncio

        interval = self.settings.site_refresh_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sites.refresh()
                await asyncio.to_thread(self.rotate_salts, datetime.now(UTC))
            except Exception:
                log.exception("background refresh failed; keeping the previous maps")

    async def start(self) -> None:
        import asyncio

        self.loader.start()
        self._tasks.append(asyncio.create_task(self._refresh_loop()))

    async def stop(self) -> None:
        import asyncio

        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        await asyncio.to_thread(self.loader.stop)
        self.writer.close()
        self.events.close()
        self.meta.engine.dispose()  # closes pooled connections (PostgreSQL would warn otherwise)
