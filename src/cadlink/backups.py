"""Backups of an embedded installation: its metadata (SQLite) and event store (DuckDB) in one
tar file with a manifest, and their restore.

DuckDB lets one process open its file, so the DuckDB file comes whole (checkpointed, without
its write-ahead log) from whoever holds it: the running server's store process copies it
(`DuckDBEventStore.copy_file`), or, with the server stopped, the command holds it, loads what
the spool still holds (so the backup has every accepted event and needs no spool) and copies
it the same way (cli_backup.py). The copy is made by a child process: DuckDB's lock on its
file is a POSIX record lock, which closing any descriptor of the file in the holding process
would drop. SQLite is copied with its online backup API, less the daily salts (deleted after
48 h, they must not outlive that in a backup). Every file is listed in `manifest.json` with
its size and SHA-256, which a restore checks before it touches the data dir. A restore moves
what it replaces aside, not deleting it.

Server mode's databases (PostgreSQL) are backed up with PostgreSQL's own tools.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
FORMAT = "cadlink-backup"
VERSION = 1
META_NAME, EVENTS_NAME = "meta.sqlite3", "events.duckdb"
_CHUNK = 1 << 20


class BackupError(Exception):
    """A backup or restore that cannot be done, with what to do instead."""


@dataclass(frozen=True)
class Layout:
    """Where an embedded installation keeps its files (from its settings)."""

    meta: Path
    events: Path
    spool: Path

    @classmethod
    def of(cls, database_url: str, events_url: str, spool: Path) -> Layout:
        from sqlalchemy.engine import make_url

        from cadlink.store.events.base import duckdb_path

        meta_url = make_url(database_url)
        events_path = duckdb_path(events_url)
        if meta_url.get_backend_name() != "sqlite" or not meta_url.database or not events_path:
            raise BackupError(
                "cadlink backup and restore handle the embedded stores (SQLite metadata, "
                "DuckDB events); back up PostgreSQL with pg_dump (docs/deployment.md)"
            )
        return cls(Path(meta_url.database), Path(events_path), spool)


def write_backup(
    layout: Layout,
    target: Path,
    events_file: Callable[[Path], tuple[Path, dict[str, int]]],
    meta_revision: str | None,
) -> dict[str, Any]:
    """Write the backup to `target` (a `.tar`, or `.tar.gz` compressed); returns its manifest.

    `events_file(scratch)` gives a copy of the event store's file made in `scratch`, whole
    (checkpointed), and its events per site."""
    compressed = target.name.endswith((".tar.gz", ".tgz"))
    partial = target.with_name(target.name + ".partial")
    try:
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            meta_copy = Path(tmp) / META_NAME
            _copy_sqlite(layout.meta, meta_copy)
            events, per_site = events_file(Path(tmp))
            files = {META_NAME: _describe(meta_copy), EVENTS_NAME: _describe(events)}
            manifest = {
                "format": FORMAT,
                "version": VERSION,
                "createdAt": datetime.now(UTC).isoformat(),
                "cadlinkVersion": _version(),
                "metaRevision": meta_revision,
                "eventsPerSite": per_site,
                "files": files,
            }
            with tarfile.open(partial, "w:gz" if compressed else "w") as tar:
                _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=1).encode())
                tar.add(meta_copy, META_NAME)
                tar.add(events, EVENTS_NAME)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return manifest


def events_per_site(events_file: Path) -> dict[str, int]:
    """Events per site in a DuckDB file no process holds (the store process's copy)."""
    import duckdb

    from cadlink.store.events.duckdb_file import CATALOG

    con = duckdb.connect()
    try:
        escaped = str(events_file).replace("'", "''")
        con.execute(f"ATTACH '{escaped}' AS {CATALOG} (READ_ONLY)")
        rows = con.execute(
            f"SELECT site_id, count(*) FROM {CATALOG}.analytics_events GROUP BY 1 ORDER BY 1"
        ).fetchall()
    finally:
        con.close()
    return {str(site): int(n) for site, n in rows}


def read_manifest(source: Path) -> dict[str, Any]:
    try:
        with tarfile.open(source) as tar:
            member = tar.extractfile(MANIFEST)
            if member is None:
                raise KeyError(MANIFEST)
            manifest: dict[str, Any] = json.loads(member.read())
    except (EOFError, zlib.error) as e:
        raise BackupError(f"{source} is damaged or cut short ({e})") from None
    except (tarfile.TarError, KeyError, ValueError, OSError) as e:
        raise BackupError(f"{source} is not a CADLINK backup ({e})") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise BackupError(f"{source} is not a CADLINK backup of format version {VERSION}")
    return manifest


def restore_backup(source: Path, layout: Layout, *, force: bool) -> dict[str, Any]:
    """Check the backup whole, then put its files in place; what was there is moved aside to
    `<name>.before-restore-<time>` (the spool too: its events are not in the backup, and
    their positions were in the event store being replaced). Returns the manifest and
    what was moved aside."""
    manifest = read_manifest(source)
    _check_not_open(layout.events)
    existing = [p for p in (layout.meta, layout.events) if p.exists()]
    if existing and not force:
        raise BackupError(
            f"{', '.join(map(str, existing))} already exist: restoring replaces them. Run "
            "again with --force (they are kept beside, as <name>.before-restore-<time>)"
        )
    layout.meta.parent.mkdir(parents=True, exist_ok=True)
    layout.events.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=layout.events.parent) as tmp:
        staged = _extract_checked(source, manifest, Path(tmp))
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        moved: list[str] = []
        for path in _with_sidecars(layout):
            if path.exists():
                aside = path.with_name(f"{path.name}.before-restore-{stamp}")
                path.rename(aside)
                moved.append(str(aside))
        shutil.move(str(staged[META_NAME]), layout.meta)
        shutil.move(str(staged[EVENTS_NAME]), layout.events)
    return {"manifest": manifest, "movedAside": moved}


def _check_not_open(events: Path) -> None:
    """A server that holds the event store would go on writing the file moved aside."""
    if not events.exists():
        return
    import duckdb

    try:
        duckdb.connect(str(events), read_only=True).close()
    except duckdb.Error as e:
        if "lock" in str(e).lower():
            raise BackupError(
                f"{events} is in use by `cadlink serve`: stop it, then restore"
            ) from None
        # Not a database DuckDB can open (damaged: why one restores): nobody holds it.


def _with_sidecars(layout: Layout) -> list[Path]:
    """The files a restore replaces: each database with its journals, and the spool."""
    meta, events = layout.meta, layout.events
    sidecars = [meta.with_name(meta.name + s) for s in ("-wal", "-shm", "-journal")]
    return [meta, *sidecars, events, events.with_name(events.name + ".wal"), layout.spool]


def _extract_checked(source: Path, manifest: dict[str, Any], into: Path) -> dict[str, Path]:
    files: dict[str, Any] = manifest.get("files", {})
    if set(files) != {META_NAME, EVENTS_NAME}:
        raise BackupError(f"{source}: its manifest lists {sorted(files)}")
    try:
        return _extract(source, files, into)
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise BackupError(f"{source} is damaged or cut short ({e or type(e).__name__})") from None


def _extract(source: Path, files: dict[str, Any], into: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    with tarfile.open(source) as tar:
        for name, expected in files.items():
            member = tar.extractfile(name)
            if member is None:
                raise BackupError(f"{source} lacks {name}")
            path = into / name
            digest = hashlib.sha256()
            size = 0
            with path.open("wb") as fh:
                while chunk := member.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    fh.write(chunk)
            if size != expected["bytes"] or digest.hexdigest() != expected["sha256"]:
                raise BackupError(f"{source}: {name} is damaged (its size or checksum differs)")
            out[name] = path
    return out


def _copy_sqlite(source: Path, target: Path) -> None:
    if not source.exists():
        raise BackupError(f"{source} does not exist: run `cadlink init` first")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        # The daily salts stay out: deleted after 48 h, they must not outlive that in a
        # backup (docs/privacy.md). A restored server makes a new one for the day.
        dst.execute("PRAGMA secure_delete = ON")  # overwritten, not just unlinked
        dst.execute("DELETE FROM salts")
        dst.commit()
    finally:
        dst.close()
        src.close()


def _describe(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(datetime.now(UTC).timestamp())
    tar.addfile(info, io.BytesIO(data))


def _version() -> str:
    from importlib.metadata import version

    return version("cadlink")


__all__ = ["BackupError", "Layout", "read_manifest", "restore_backup", "write_backup"]
