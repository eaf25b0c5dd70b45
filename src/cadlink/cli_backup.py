"""`cadlink backup` and `cadlink restore` (backups.py; docs/deployment.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from cadlink.cli_common import check_output, open_events


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
    """Back up the embedded installation (metadata and events) to one file, with the server
    stopped. Events the server accepted and had not stored yet are stored first."""
    from cadlink.backups import BackupError, Layout, write_backup
    from cadlink.cli import _settings
    from cadlink.services import build_meta, load_spool
    from cadlink.store.events.duckdb_store import DuckDBEventStore

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
    events = open_events(settings, "stop it, back up, then start it")
    try:
        assert isinstance(events, DuckDBEventStore)  # Layout.of checked the URL

        def ready() -> dict[str, int]:
            stored = load_spool(settings, events, meta)
            if stored:
                click.echo(f"stored {stored} events the server had accepted first", err=True)
            events.checkpoint()
            rows = events.fetch(
                "SELECT site_id, count(*) AS n FROM analytics_events GROUP BY 1 ORDER BY 1", []
            )
            return {str(r["site_id"]): int(r["n"]) for r in rows}

        try:
            manifest = write_backup(layout, target, ready, meta.ping().get("revision"))
        except BackupError as e:
            raise click.ClickException(str(e)) from None
    finally:
        events.close()
    size = sum(f["bytes"] for f in manifest["files"].values())
    total = sum(manifest["eventsPerSite"].values())
    click.echo(
        json.dumps({"output": str(target), **manifest})
        if as_json
        else f"backed up the metadata and {total} events ({_sites(manifest['eventsPerSite'])}; "
        f"{size / 1e6:.1f} MB before packing) to {target}"
    )


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
