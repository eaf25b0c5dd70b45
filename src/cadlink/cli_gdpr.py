"""`cadlink gdpr export|delete`: data subject requests from the command line
(data_subjects.py; docs/privacy.md)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from cadlink.cli_common import check_output, open_events, whole_file
from cadlink.store.events.remote import RemoteEventStore

if TYPE_CHECKING:
    from cadlink.data_subjects import Subject
    from cadlink.store.events.base import EventStore
    from cadlink.store.meta import MetaStore

F = TypeVar("F", bound=Callable[..., Any])
CATCH_UP_S = 60.0  # how long a request waits for a running server's loader


def _subject_options(fn: F) -> F:
    options = [
        click.option(
            "--site", "site_id", required=True, help="The site's id (`cadlink sites list`)."
        ),
        click.option(
            "--user-id",
            "user_ids",
            multiple=True,
            help="The id the site gave identify() (repeat for several).",
        ),
        click.option(
            "--visitor-id",
            "visitor_ids",
            multiple=True,
            help="The tracker's visitorId, kept in the visitor's browser after consent "
            "(localStorage `cadlink:v`).",
        ),
        click.option(
            "--stored-visitor-id",
            "stored_ids",
            multiple=True,
            type=click.IntRange(-(2**63), 2**63 - 1),
            help="A visitorId as the API and the CRM show it.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.group()
def gdpr() -> None:
    """Data subject requests: export or erase everything stored about one person.

    Name the person by any of --user-id, --visitor-id and --stored-visitor-id (each may be
    repeated); every visitor id they match is included. Events accepted before the request
    are stored first, so that none is stored after an erasure: beside a running `cadlink
    serve` the command waits for its loader and works through its store process; with the
    server stopped it loads the spool itself.
    """


@gdpr.command("export")
@_subject_options
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the JSON document here (default: standard output).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def export_subject(
    site_id: str,
    user_ids: tuple[str, ...],
    visitor_ids: tuple[str, ...],
    stored_ids: tuple[int, ...],
    output: Path | None,
    as_json: bool,
) -> None:
    """Everything stored about one person (their sessions, events and identified-user
    traits) as one JSON document."""
    from cadlink import data_subjects

    check_output(output)
    with ExitStack() as stack:
        meta, events, subject = _open(stack, site_id, user_ids, visitor_ids, stored_ids)
        if output is None:
            counts = data_subjects.export(meta, events, subject, sys.stdout)
        else:
            with whole_file(output) as fh:
                counts = data_subjects.export(meta, events, subject, fh, _progress)
    summary = (
        f"exported {counts['events']} events, {counts['sessions']} sessions of "
        f"{counts['visitors']} visitor ids and {counts['siteUsers']} identified users"
        + (f" to {output}" if output else "")
    )
    # The document may be on standard output: the summary goes to standard error then.
    click.echo(json.dumps(counts) if as_json else summary, err=output is None)


@gdpr.command("delete")
@_subject_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print what was deleted as JSON.")
def delete_subject(
    site_id: str,
    user_ids: tuple[str, ...],
    visitor_ids: tuple[str, ...],
    stored_ids: tuple[int, ...],
    yes: bool,
    as_json: bool,
) -> None:
    """Erase everything stored about one person: every row of their visitor ids (events,
    sessions, rollups) and their identified-user traits. Cannot be undone."""
    from cadlink import data_subjects
    from cadlink.store.events.subjects import TABLES

    with ExitStack() as stack:
        meta, events, subject = _open(stack, site_id, user_ids, visitor_ids, stored_ids)
        found = data_subjects.find(meta, events, subject)
        if not found.visitor_ids and not found.site_users:
            deleted = dict.fromkeys([*TABLES, "site_users"], 0)
        else:
            if not yes:
                click.confirm(
                    f"Erase every event and session of {len(found.visitor_ids)} visitor ids "
                    f"and {len(found.site_users)} identified users on {subject.site.domain}? "
                    "This cannot be undone",
                    abort=True,
                    err=True,
                )
            deleted = data_subjects.erase(meta, events, subject.site, found)
    total = sum(deleted.values())
    text = (
        "nothing stored matches; nothing deleted"
        if not total
        else "deleted " + ", ".join(f"{n} {table}" for table, n in deleted.items() if n)
    )
    click.echo(json.dumps({"deleted": deleted}) if as_json else text)


def _wait_caught_up(server: RemoteEventStore, timeout: float = CATCH_UP_S) -> None:
    """Beside a running server, wait until its loader has stored what it accepted before
    this request (and its identified users are recorded): an erasure is then not undone by
    them, and an export has them."""
    deadline = time.monotonic() + timeout
    while not server.caught_up():
        if time.monotonic() > deadline:
            raise click.ClickException(
                f"the running server has not stored what it accepted within {timeout:.0f} s "
                "(a large backlog, see GET /api/health/queue): try again later"
            )
        time.sleep(0.1)
    click.echo("through the running server, once it had stored what it accepted", err=True)


def _progress(events: int) -> None:
    click.echo(f"  {events} events written", err=True)


def _open(
    stack: ExitStack,
    site_id: str,
    user_ids: tuple[str, ...],
    visitor_ids: tuple[str, ...],
    stored_ids: tuple[int, ...],
) -> tuple[MetaStore, EventStore, Subject]:
    from cadlink.cli import _settings
    from cadlink.data_subjects import Subject
    from cadlink.services import build_meta, load_spool

    if not (user_ids or visitor_ids or stored_ids):
        raise click.UsageError("name the person: --user-id, --visitor-id or --stored-visitor-id")
    settings = _settings()
    meta = build_meta(settings)
    site = meta.get_site(site_id)
    if site is None:
        raise click.ClickException(f"no site with id {site_id!r}; see `cadlink sites list`")
    events = open_events(settings, "stop it, run this again, then start it", through_server=True)
    stack.callback(events.close)
    if isinstance(events, RemoteEventStore):
        _wait_caught_up(events)
    elif events.engine == "duckdb":
        # The file is ours, so no server is loading the spool: load what it holds first.
        stored = load_spool(settings, events, meta)
        if stored:
            click.echo(f"loaded {stored} events the server had accepted first", err=True)
    return meta, events, Subject(site, user_ids, visitor_ids, stored_ids)
