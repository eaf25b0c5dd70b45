"""The `cadlink` command line. Every command has `--help`; listings take `--json`."""

from __future__ import annotations

import faulthandler
import gc
import json
import os
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

from cadlink.cli_backup import backup, restore
from cadlink.cli_export import export
from cadlink.cli_gdpr import gdpr
from cadlink.cli_worker import worker
from cadlink.config import Settings, settings_errors, unknown_settings
from cadlink.heap import map_large_buffers, release_free_memory
from cadlink.private_files import PRIVATE_UMASK

if TYPE_CHECKING:
    from cadlink.store.meta import MetaStore
    from cadlink.store.meta.records import SiteRecord


def _settings() -> Settings:
    from dotenv import dotenv_values  # what Settings reads .env with (pydantic-settings)

    dotenv = {k.upper(): v or "" for k, v in dotenv_values(".env").items()}
    for name in unknown_settings(dotenv | dict(os.environ)):
        click.echo(f"warning: {name} is not a setting and is ignored", err=True)
    try:
        return Settings()
    except ValidationError as e:
        # One line per bad setting, naming it and never echoing its value (maybe a secret).
        raise click.ClickException("\n".join(settings_errors(e))) from None
    except ValueError as e:  # pydantic-settings' own: names the setting and its source
        raise click.ClickException(str(e)) from None


def _emit(as_json: bool, data: Any, text: str) -> None:
    click.echo(json.dumps(data, default=str) if as_json else text)


class _Main(click.Group):
    """The `cadlink` group: an error the metadata store raises on purpose (a value it refused,
    a database or data dir it cannot open), from any command, is one line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        from cadlink.store.meta.errors import MetaStoreError

        try:
            return super().invoke(ctx)
        except MetaStoreError as e:
            raise click.ClickException(str(e)) from None


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cadlink")
def main() -> None:
    """CADLINK Analytics: self-hosted, privacy-first analytics for shops and content sites.

    Configuration comes from CADLINK_* environment variables (or a .env file);
    see docs/configuration.md.
    """
    # What cadlink writes (databases, spool, backups, exports) holds salts, password hashes
    # and visitors' events: readable by its own user only (docs/privacy.md).
    os.umask(os.umask(PRIVATE_UMASK) | PRIVATE_UMASK)


@main.command()
@click.option("--host", default=None, help="Address to bind (default: CADLINK_HOST, 127.0.0.1).")
@click.option(
    "--port",
    default=None,
    type=click.IntRange(1, 65535),
    help="Port (default: CADLINK_PORT, 8000).",
)
def serve(host: str | None, port: int | None) -> None:
    """Serve the API, the collect endpoint and the dashboard; runs the loader (in a store
    process of its own unless CADLINK_STORE_PROCESS=false)."""
    import uvicorn

    from cadlink.app import create_app
    from cadlink.logs import configure_logging
    from cadlink.services import Services
    from cadlink.web.collect_protocol import collect_protocol

    settings = _settings()
    configure_logging(settings.log_level)
    try:
        app = create_app(settings, Services.build(settings, store_process=settings.store_process))
    except Exception as e:
        if "lock" in str(e).lower():
            raise click.ClickException(
                f"the event store {settings.events_url} is in use by another process "
                "(DuckDB allows one writer): stop the other `cadlink serve` first"
            ) from None
        raise
    # A crash inside a native library (DuckDB, Arrow) then leaves every thread's Python stack
    # in the log, naming the statement that was running.
    faulthandler.enable()
    # Everything built so far (the app, its libraries) lives as long as the server: frozen,
    # the collector no longer walks it on every full pass. At the single-event peak those
    # passes cost the request path up to 5 µs per request (a microbenchmark of the
    # collect handler: 15 -> 10 µs while the app was young).
    gc.collect()
    gc.freeze()
    release_free_memory()
    map_large_buffers()  # the loader's batches, when it runs in this process
    uvicorn.run(
        app,
        host=host or settings.host,
        port=port if port is not None else settings.port,
        access_log=False,  # it would log client IPs; we count requests in /metrics instead
        log_config=None,
        server_header=False,
        proxy_headers=False,  # we read X-Forwarded-For ourselves, from trusted proxies only
        timeout_graceful_shutdown=10,
        # uvicorn's protocol, with collect requests answered without the ASGI round trip
        # (web/collect_protocol.py).
        http=collect_protocol(app.collect),
    )


def _admin_password_file(settings: Settings) -> Path:
    return settings.data_dir / "initial-admin-password"


@main.command()
@click.option("--ensure-admin", "admin_email", default=None, help="Create this ADMIN if missing.")
@click.option(
    "--admin-password", default=None, help="Password for --ensure-admin (default: generated)."
)
@click.option("--demo", is_flag=True, help="Ensure a demo site with 30 days of demo history.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def init(admin_email: str | None, admin_password: str | None, demo: bool, as_json: bool) -> None:
    """Create the data dir and databases (idempotent); optionally an admin and a demo site."""
    from cadlink.cli_common import open_events
    from cadlink.services import build_meta
    from cadlink.store.events.remote import RemoteEventStore

    settings = _settings()
    meta = build_meta(settings)
    out: dict[str, Any] = {"dataDir": str(settings.data_dir.resolve())}
    lines = [f"data dir: {out['dataDir']}"]
    if admin_email:  # a refused email or password: one line, from `_Main`
        created, line = _ensure_admin(settings, meta, admin_email, admin_password)
        out["admin"] = {"email": admin_email, "created": created}
        lines.append(line)
    # Beside a running `cadlink serve`, its store process answers (the store exists); the
    # demo's load, a write, then needs the server stopped.
    events = open_events(settings, "stop it, then run `cadlink init` again", through_server=True)
    try:
        if demo:
            site = next((s for s in meta.list_sites() if s.domain == "demo-shop.example"), None)
            if site is None:
                site = meta.create_site("demo-shop.example", "Demo shop")
            out["demoSite"] = site.public_id
            lines.append(f"demo site: {site.public_id} (demo-shop.example)")
            if events.count_events(site.public_id) == 0:
                if isinstance(events, RemoteEventStore):
                    raise click.ClickException(
                        f"the event store {settings.events_url} is in use by `cadlink serve` "
                        "(DuckDB allows one process): stop it to load the demo history, then "
                        "run `cadlink init --demo` again"
                    )
                n = _load_demo(settings, meta, events, site, 30, 60_000, not as_json)
                lines.append(f"generated {n} demo events over 30 days")
    finally:
        events.close()
    _emit(as_json, out, "\n".join(lines))


def _ensure_admin(
    settings: Settings, meta: MetaStore, email: str, given: str | None
) -> tuple[bool, str]:
    """Create the ADMIN `email` unless the account exists: whether it was created, and the
    line to print. A password is shown only when it is the account's own: the one set here,
    or the saved initial password when the account still has it (the file holds the first
    admin's, which a later `--ensure-admin` of another account must not reveal)."""
    from cadlink.auth.passwords import PasswordHasher
    from cadlink.services import build_auth

    pw_file = _admin_password_file(settings)
    saved = pw_file.read_text().strip() if pw_file.exists() else None
    password = given or saved or secrets.token_urlsafe(12)
    created = build_auth(settings, meta).ensure_admin(email, password)
    if created:
        if not given:
            pw_file.write_text(password + "\n")
            pw_file.chmod(0o600)
        return True, f"log in as {email} with password {password}"
    creds = meta.get_user_credentials(email)
    if not given and saved and creds and PasswordHasher().verify(creds.password_hash, saved):
        return False, f"log in as {email} with password {saved}"
    role = creds.user.role if creds else "account"
    kept = " (--admin-password applies to a new account only)" if given else ""
    return False, f"{email} exists ({role}) and keeps its password{kept}"


@main.group()
def users() -> None:
    """Manage dashboard accounts."""


@users.command("create")
@click.option("--email", required=True)
@click.option("--password", required=True, help="At least 8 characters.")
@click.option(
    "--role",
    type=click.Choice(["ADMIN", "ANALYST", "VIEWER"]),
    default="ANALYST",
    show_default=True,
)
@click.option("--json", "as_json", is_flag=True)
def users_create(email: str, password: str, role: str, as_json: bool) -> None:
    """Create an account."""
    from cadlink.auth.errors import AuthError
    from cadlink.services import build_auth, build_meta
    from cadlink.store.meta.errors import MetaStoreError

    settings = _settings()
    try:
        user = build_auth(settings, build_meta(settings)).create_user(email, password, role)
    except (MetaStoreError, AuthError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    data = {"id": user.id, "email": user.email, "role": str(user.role)}
    _emit(as_json, data, f"created {user.role} {user.email} (id {user.id})")


@main.group()
def sites() -> None:
    """Manage tracked sites."""


def _site_dict(site: Any) -> dict[str, Any]:
    from cadlink.web.routes_sites import site_json

    return site_json(site)


@sites.command("create")
@click.option("--domain", required=True, help="The site's host name, e.g. shop.example.com.")
@click.option("--name", default=None, help="Display name (default: the domain).")
@click.option("--timezone", default="UTC", show_default=True, help="IANA zone for reports.")
@click.option("--origin", "origins", multiple=True, help="Extra allowed origin (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the site as JSON.")
def sites_create(
    domain: str, name: str | None, timezone: str, origins: tuple[str, ...], as_json: bool
) -> None:
    """Create a site and print its id (the `data-site` of the tracker tag)."""
    from cadlink.services import build_meta
    from cadlink.store.meta.errors import MetaStoreError

    settings = _settings()
    try:
        site = build_meta(settings).create_site(domain, name, list(origins) or None, timezone)
    except MetaStoreError as e:
        raise click.ClickException(str(e)) from None
    data = _site_dict(site)
    _emit(as_json, data, f"created site {site.domain}: id {site.public_id}")


@sites.command("list")
@click.option("--json", "as_json", is_flag=True)
def sites_list(as_json: bool) -> None:
    """List sites."""
    from cadlink.services import build_meta

    all_sites = [_site_dict(s) for s in build_meta(_settings()).list_sites()]
    text = "\n".join(f"{s['id']}  {s['domain']}  {s['name'] or ''}" for s in all_sites)
    _emit(as_json, all_sites, text or "no sites yet: cadlink sites create --domain example.com")


def _load_demo(
    settings: Settings,
    meta: MetaStore,
    events: Any,
    site: SiteRecord,
    days: int,
    count: int,
    progress: bool,
) -> int:
    """Generate history and bulk-load it through the real enrichment and sessionizer: the
    `days` calendar days up to now in the site's timezone (the dashboard's "last N days")."""
    from collections.abc import Iterator

    from tqdm import tqdm

    from cadlink.events import Envelope
    from cadlink.ingest.buffer import SpoolReader
    from cadlink.pipeline.demo import DemoConfig, generate
    from cadlink.pipeline.enrichment import Enricher
    from cadlink.pipeline.loader import Loader
    from cadlink.services import build_geo, build_ua_parser, identity_recorder

    # Demo history is "received" when it happened, so the late-event clamp must not apply.
    enricher = Enricher(build_ua_parser(), build_geo(settings), late_event_hours=24 * (days + 1))
    # A private, empty spool directory: demo rows go straight to the store, not the live buffer.
    # Its identified users go to the metadata store with their traits, as the server's do.
    loader = Loader(
        SpoolReader(settings.data_dir / "demo-spool"),
        events,
        enricher,
        on_identities=identity_recorder(meta),
    )
    config = DemoConfig(
        site_id=site.public_id,
        days=days,
        events=count,
        end=datetime.now(UTC),
        timezone=site.timezone,
    )
    with tqdm(total=count, unit="ev", disable=not progress, file=sys.stderr, desc="demo") as bar:

        def chunks() -> Iterator[list[Envelope]]:
            for chunk in generate(config):
                bar.update(sum(len(e.events) for e in chunk))
                yield chunk

        stored = loader.load_history(chunks())
        bar.set_description("demo (sessions built)")
    return stored


@main.command()
@click.option(
    "--site", "site_id", default=None, help="Site id (default: the demo site, created if missing)."
)
@click.option(
    "--days",
    default=30,
    show_default=True,
    type=click.IntRange(1, 3650),
    help="Calendar days of history up to now, in the site's timezone (today included).",
)
@click.option(
    "--events", "count", default=50_000, show_default=True, type=click.IntRange(1, 1_000_000_000)
)
@click.option("--json", "as_json", is_flag=True)
def demo(site_id: str | None, days: int, count: int, as_json: bool) -> None:
    """Generate realistic synthetic history through the real enrichment and sessionizer."""
    from cadlink.services import build_events, build_meta

    settings = _settings()
    meta = build_meta(settings)
    if site_id is None:
        site = next((s for s in meta.list_sites() if s.domain == "demo-shop.example"), None)
        site = site or meta.create_site("demo-shop.example", "Demo shop")
    else:
        found = meta.get_site(site_id)
        if found is None:
            raise click.ClickException(f"no site with id {site_id!r}; see `cadlink sites list`")
        site = found
    try:
        events = build_events(settings)
    except Exception as e:
        raise click.ClickException(
            f"cannot open the event store ({e}); stop `cadlink serve` while generating demo data"
        ) from None
    try:
        stored = _load_demo(settings, meta, events, site, days, count, not as_json)
    finally:
        events.close()
    _emit(
        as_json,
        {"siteId": site.public_id, "stored": stored},
        f"stored {stored} demo events for {site.domain} ({site.public_id})",
    )


main.add_command(backup)
main.add_command(restore)
main.add_command(export)
main.add_command(gdpr)
main.add_command(worker)

if __name__ == "__main__":  # pragma: no cover
    main()
