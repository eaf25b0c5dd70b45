"""`cadlink backup` and `cadlink restore` (backups.py; docs/deployment.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cadlink.cli_common import check_output, open_events

if TYPE_CHECKING:
    from cadlink.backups import Layout
    from cadlink.config import Settings
    from cadlink.pipeline.store_address import StoreAddress
    from cadlink.store.meta import MetaStore


@click.command("backup")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The backup file: .tar, or .tar.gz to compress it "
    "(default: cadlink-backup-<UTC time>.tar here).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def backup(output: Path | None, as_json: bool) -> None:
    """Back up the embedded installation (metadata and events) to one file.

    While `cadlink serve` runs, its store process copies the event store (events it accepted
    in the last moments, not yet stored, are not in the backup). With the server stopped,
    the events it accepted and had not stored yet are stored first."""
    from cadlink.backups import BackupError, Layout
    from cadlink.cli import _settings
    from cadlink.pipeline import store_address
    from cadlink.services import build_meta

    check_output(output)
    settings = _settings()
    target = output or Path(f"cadlink-backup-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.tar")
    if target.exists():
        raise click.ClickException(f"{target} exists: choose another --output")
    try:
        layout = Layout.of(settings.database_url, settings.events_url, settings.spool_dir)
    except BackupError as e:
        raise click.ClickException(str(e)) from None
    meta = build_meta(settings)
    running = store_address.read(settings.data_dir)
    try:
        try:
            if running is None:
                raise _NotServing
            manifest = _backup_beside_server(layout, target, meta, running)
        except _NotServing:
            manifest = _backup_stopped(settings, layout, target, meta)
    except BackupError as e:
        raise click.ClickException(str(e)) from None
    size = sum(f["bytes"] for f in manifest["files"].values())
    total = sum(manifest["eventsPerSite"].values())
    click.echo(
        json.dumps({"output": str(target), **manifest})
        if as_json
        else f"backed up the metadata and {total} events ({_sites(manifest['eventsPerSite'])}; "
        f"{size / 1e6:.1f} MB before packing) to {target}"
    )


class _NotServing(Exception):
    """No running server answers for the data dir."""


def _backup_stopped(
    settings: Settings, layout: Layout, target: Path, meta: MetaStore
) -> dict[str, Any]:
    """The server is stopped: hold the event store, store what the spool holds, and copy it
    (checkpointed; the copy is packed: reading the file itself here would drop this process's
    lock on it, so a server started meanwhile could write it while it is packed)."""
    from cadlink.backups import write_backup
    from cadlink.services import load_spool
    from cadlink.store.events.duckdb_store import DuckDBEventStore

    events = open_events(settings, "stop it, back up, then start it")
    try:
        assert isinstance(events, DuckDBEventStore)  # Layout.of checked the URL

        def ready(scratch: Path) -> tuple[Path, dict[str, int]]:
            stored = load_spool(settings, events, meta)
            if stored:
                click.echo(f"stored {stored} events the server had accepted first", err=True)
            copy = scratch / "events-copy.duckdb"
            events.copy_file(str(copy))
            rows = events.fetch(
                "SELECT site_id, count(*) AS n FROM analytics_events GROUP BY 1 ORDER BY 1", []
            )
            return copy, {str(r["site_id"]): int(r["n"]) for r in rows}

        return write_backup(layout, target, ready, meta.ping().get("revision"))
    finally:
        events.close()


def _backup_beside_server(
    layout: Layout, target: Path, meta: MetaStore, running: StoreAddress
) -> dict[str, Any]:
    """`cadlink serve` runs: its store process copies the event store's file (its loader
    waits meanwhile; collect goes on), and the copy is packed. Events still in the spool are
    not in it: they are stored after the copy."""
    from cadlink.backups import BackupError, events_per_site, write_backup
    from cadlink.store.events.remote import RemoteEventStore, StoreUnavailable

    def copied(scratch: Path) -> tuple[Path, dict[str, int]]:
        copy = scratch / "events-copy.duckdb"
        client = RemoteEventStore(running.address, running.authkey)
        try:
            client.copy_file(str(copy))
        except StoreUnavailable as e:
            # A server killed without its goodbye, its process id taken by another since:
            # nobody answers, so nobody holds the file either.
            raise _NotServing from e
        except PermissionError as e:
            raise BackupError(
                f"the server cannot write the backup's directory ({e}): run the backup as "
                "the user the server runs as"
            ) from e
        finally:
            client.close()
        click.echo(f"copied the event store of the running server (pid {running.pid})", err=True)
        return copy, events_per_site(copy)

    return write_backup(layout, target, copied, meta.ping().get("revision"))


@click.command("restore")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--force",
    is_flag=True,
    help="Replace an existing installation (its files are kept beside, renamed).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was restored as JSON.")
def restore(source: Path, force: bool, as_json: bool) -> None:
    """Restore a `cadlink backup` file into the data dir, with the server stopped. The
    backup is checked whole (sizes and checksums) before anything is replaced."""
    from cadlink.backups import BackupError, Layout, restore_backup
    from cadlink.cli import _settings
    from cadlink.services import build_meta

    settings = _settings()
    try:
        layout = Layout.of(settings.database_url, settings.events_url, settings.spool_dir)
        done = restore_backup(source, layout, force=force)
    except BackupError as e:
        raise click.ClickException(str(e)) from None
    # Open both as the server will (migrating a backup from an older version) and count.
    sites = len(build_meta(settings).list_sites())
    events = open_events(settings, "stop it, restore, then start it")
    try:
        stored = events.count_events()
    finally:
        events.close()
    manifest = done["manifest"]
    summary = {
        "source": str(source),
        "createdAt": manifest["createdAt"],
        "sites": sites,
        "events": stored,
        "movedAside": done["movedAside"],
    }
    text = (
        f"restored {stored} events and {sites} sites from {source} "
        f"(backed up {manifest['createdAt']})"
    )
    if done["movedAside"]:
        text += "; the files it replaced are kept as " + ", ".join(done["movedAside"])
    click.echo(json.dumps(summary) if as_json else text)


def _sites(events_per_site: dict[str, int]) -> str:
    n = len(events_per_site)
    return f"{n} site with events" if n == 1 else f"{n} sites with events"
