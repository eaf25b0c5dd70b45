"""What the commands that open the stores share."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from cadlink.config import Settings
    from cadlink.store.events.base import EventStore


def open_events(settings: Settings, advice: str, *, through_server: bool = False) -> EventStore:
    """The event store, or a clear error when `cadlink serve` holds it (DuckDB lets one
    process open its file); `advice` says what to do about it. `through_server`: when it
    runs, its store process instead (which answers reads, and the few writes a command may
    ask of it: `RemoteEventStore`)."""
    from cadlink.pipeline import store_address
    from cadlink.services import build_events
    from cadlink.store.events.remote import RemoteEventStore

    running = store_address.read(settings.data_dir) if through_server else None
    if running is not None:
        remote = RemoteEventStore(running.address, running.authkey)
        try:
            remote.ping()
            return remote
        except Exception:
            remote.close()  # nobody answers (a server killed): open the file below
    try:
        return build_events(settings)
    except Exception as e:
        if "lock" not in str(e).lower():
            raise
        raise click.ClickException(
            f"the event store {settings.events_url} is in use by `cadlink serve` (DuckDB "
            f"allows one process): {advice}"
        ) from None


def check_output(path: Path | None, option: str = "--output") -> None:
    """Refuse an output file whose directory does not exist, before any work is done."""
    if path is not None and not path.parent.is_dir():
        raise click.BadParameter(f"the directory {path.parent} does not exist", param_hint=option)


@contextlib.contextmanager
def whole_file(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Write `path` through `<path>.partial`, renamed once the block succeeds: a failed
    export leaves no file that looks whole."""
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open(mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
