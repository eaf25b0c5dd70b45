"""`cadlink export`: a site's raw events or sessions to a file, streamed in constant memory
(the encoders of `GET /api/v1/analytics/export`, query/export.py)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click

from cadlink.cli_common import check_output, open_events, whole_file

if TYPE_CHECKING:
    import pyarrow as pa

EVERYTHING_FROM = date(1970, 1, 1)


@click.command("export")
@click.option("--site", "site_id", required=True, help="The site's id (`cadlink sites list`).")
@click.option(
    "--table",
    type=click.Choice(["events", "sessions"]),
    default="events",
    show_default=True,
    help="Raw events, or sessions (by the day they started).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json", "parquet"]),
    default="csv",
    show_default=True,
    help="json: one object per line (NDJSON).",
)
@click.option("--start-date", help="First day, YYYY-MM-DD in the site's timezone (default: all).")
@click.option("--end-date", help="Last day, included (default: today).")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write here (default: standard output).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def export(
    site_id: str,
    table: str,
    fmt: str,
    start_date: str | None,
    end_date: str | None,
    output: Path | None,
    as_json: bool,
) -> None:
    """Export a site's stored events or sessions as CSV, NDJSON or Parquet (from the running
    server's store process when `cadlink serve` runs)."""
    from cadlink.cli import _settings
    from cadlink.query import export as encoders
    from cadlink.query import params
    from cadlink.query.spec import QueryError
    from cadlink.services import build_meta

    check_output(output)
    out_format = encoders.Format(fmt)
    if output is None and out_format is encoders.Format.PARQUET and sys.stdout.isatty():
        raise click.UsageError("Parquet is binary: write it to a file with --output")
    settings = _settings()
    site = build_meta(settings).get_site(site_id)
    if site is None:
        raise click.ClickException(f"no site with id {site_id!r}; see `cadlink sites list`")
    try:
        period = params.period(
            start_date or EVERYTHING_FROM.isoformat(), end_date, site.timezone, max_days=None
        )
    except QueryError as e:
        raise click.BadParameter(str(e), param_hint="--start-date/--end-date") from None
    events = open_events(settings, "stop it, then export", through_server=True)
    try:
        lo, hi = period.bounds()
        schema, batches = events.stream(table, site.public_id, lo, hi)
        counted = _Counted(batches)
        chunks = encoders.encode_batches(counted, out_format, schema)
        if output is None:
            _write(chunks, sys.stdout.buffer)
        else:
            with whole_file(output, "wb") as fh:
                _write(chunks, fh)
    finally:
        events.close()
    summary = {
        "siteId": site.public_id,
        "table": table,
        "rows": counted.rows,
        "startDate": period.start.isoformat() if start_date else None,
        "endDate": period.end.isoformat(),
        "output": str(output) if output else None,
    }
    text = f"exported {counted.rows} {table} of {site.domain}" + (f" to {output}" if output else "")
    # The rows may be on standard output: the summary goes to standard error then.
    click.echo(json.dumps(summary) if as_json else text, err=output is None)


class _Counted:
    """Arrow batches passed through, their rows counted."""

    def __init__(self, batches: Iterator[pa.RecordBatch]) -> None:
        self._batches = batches
        self.rows = 0

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        for batch in self._batches:
            self.rows += batch.num_rows
            yield batch


def _write(chunks: Iterator[bytes], out: IO[bytes]) -> None:
    for chunk in chunks:
        if chunk:
            out.write(chunk)
    out.flush()
