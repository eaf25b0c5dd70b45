"""Funnels: how many visitors go through ordered steps within a conversion window.

Steps (the `steps` parameter, comma-separated, 2-10 of them), each
`event_type[@page][[key=value]]`:

- `product_view` — any event of that type;
- `page_view@/checkout` — of that type on exactly that page path;
  `page_view@/blog/*` — on a path starting with `/blog/`;
- `affiliate_click[platform=amazon]` — whose property `platform` is the text `amazon`
  (numbers and booleans compare as their JSON text: `[position=1]`, `[newsletter=true]`).

Paths and values may not contain `,` (the step separator) or `]`.

Definition (all events within the period and the report's filters):

- a visitor **enters** at their first step-1 event (time t1);
- they **reach** step k at the earliest step-k event strictly after the time they reached
  step k-1 and at most `window` after t1 (greedy earliest matching, which is optimal for that
  entry: an earlier step k never prevents a later step);
- per step: `visitors` reaching it, `conversionFromFirst` = visitors / step-1 visitors,
  `conversionFromPrevious` = visitors / previous step's visitors (1 for step 1),
  `dropOff` = previous step's visitors - visitors (0 for step 1),
  `medianSecondsToNext` = median over visitors reaching the next step of (t(k+1) - t(k)) in
  seconds, interpolated between the two middle values (so a multiple of 0.5 ms; null on the
  last step or when nobody reached the next one).

The window is given in `window` as minutes (`90`) or with a unit (`30m`, `2h`, `7d`);
the default is one day.

One statement. On DuckDB, one scan of every step's events grouped by visitor: the first step-1
time and, per later step, the list of its times, from which each step takes the earliest in
its range (`list_filter`). On PostgreSQL, each visitor's first step-1 event, then one grouped
CTE per step joining the visitors who reached the previous step with their events of this
step, each step's events read through its (site, type, ts) index. Both are linear in events.
Measured on the query benchmark's 3-step funnel: on DuckDB at 10 M events the one scan took
~260 ms against ~320 ms for the joins; on PostgreSQL at 1 M the same shape with `array_agg`
and `unnest` took 287 ms against 237 ms for the joins (docs/benchmarks.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cadlink.query.dialects import dialect_for
from cadlink.query.dimensions import dimension
from cadlink.query.plan import EVENTS, Executor, Plan
from cadlink.query.spec import QueryError, ReportSpec
from cadlink.query.sql import Sql, join, param

MIN_STEPS, MAX_STEPS = 2, 10
DEFAULT_WINDOW = timedelta(days=1)
MAX_WINDOW = timedelta(days=90)
MAX_PATH, MAX_VALUE = 2048, 512

_STEP = re.compile(
    r"^(?P<type>[A-Za-z0-9_.:\-]{1,64})"
    r"(?:@(?P<page>/[^\[\]]*))?"
    r"(?:\[(?P<key>[A-Za-z0-9_]{1,64})=(?P<value>[^\]]*)\])?$"
)
_WINDOW = re.compile(r"^(?P<n>[0-9]{1,6})(?P<unit>[mhd]?)$")
_UNIT_MINUTES = {"": 1, "m": 1, "h": 60, "d": 1440}


@dataclass(frozen=True)
class Step:
    label: str
    event_type: str
    page: str | None = None  # exact path, or a prefix when it ends with `*`
    key: str | None = None
    value: str | None = None

    def as_json(self) -> dict[str, Any]:
        prop = None if self.key is None else {"key": self.key, "value": self.value}
        return {"label": self.label, "eventType": self.event_type, "page": self.page,
                "property": prop}  # fmt: skip


def parse_step(text: str) -> Step:
    m = _STEP.match(text)
    if m is None:
        raise QueryError(
            f"step {text!r} is not event_type, event_type@/path or event_type[key=value]", "steps"
        )
    page, value = m["page"], m["value"]
    if page is not None and len(page) > MAX_PATH:
        raise QueryError(f"step {text[:80]!r}: the path is longer than {MAX_PATH}", "steps")
    if value is not None and not 1 <= len(value) <= MAX_VALUE:
        raise QueryError(f"step {text[:80]!r}: the value must be 1-{MAX_VALUE} chars", "steps")
    return Step(text, m["type"], page, m["key"], value)


def parse_steps(raw: str | None) -> tuple[Step, ...]:
    """`product_view,page_view@/cart,affiliate_click[platform=amazon]` → steps."""
    parts = [p.strip() for p in (raw or "").split(",")]
    if not raw or not MIN_STEPS <= len(parts) <= MAX_STEPS:
        raise QueryError(
            f"steps must be {MIN_STEPS}-{MAX_STEPS} comma-separated steps, "
            "e.g. product_view,page_view@/cart,affiliate_click[platform=amazon]",
            "steps",
        )
    return tuple(parse_step(p) for p in parts)


def parse_window(raw: str | None) -> timedelta:
    """`90` (minutes), `30m`, `2h` or `7d`; default one day, at most 90 days."""
    if not raw:
        return DEFAULT_WINDOW
    m = _WINDOW.match(raw.strip())
    window = timedelta(minutes=int(m["n"]) * _UNIT_MINUTES[m["unit"]]) if m else timedelta()
    if not timedelta(minutes=1) <= window <= MAX_WINDOW:
        raise QueryError(
            "window must be minutes (90) or 30m, 2h, 7d: 1 minute to 90 days", "window"
        )
    return window


def _condition(plan: Plan, step: Step) -> Sql:
    conds = [Sql("e.event_type = ?", (step.event_type,))]
    if step.page is not None:
        if step.page.endswith("*"):
            prefix = step.page[:-1]
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            conds.append(Sql("e.page_path LIKE ? ESCAPE '\\'", (escaped + "%",)))
        else:
            conds.append(Sql("e.page_path = ?", (step.page,)))
    if step.key is not None:
        expr = plan.event_expr(dimension("prop:" + step.key))
        conds.append(expr + " = " + param(step.value))
    return join(conds, " AND ")


def _statement(plan: Plan, steps: tuple[Step, ...], window: timedelta) -> Sql:
    if plan.dialect.name == "duckdb":
        return _one_scan(plan, steps, window)
    return _joined(plan, steps, window)


def _one_scan(plan: Plan, steps: tuple[Step, ...], window: timedelta) -> Sql:
    """Each visitor's step times from one scan: `t1` the first step-1 time, `l<k>` every
    step-k time; then each step, in order, takes the earliest of its times after the previous
    step's and within the window (NULL once a step is missed: nothing is after NULL)."""
    ms = plan.dialect.epoch_ms("e.ts")
    conds = [_condition(plan, step) for step in steps]
    window_ms = int(window.total_seconds() * 1000)
    lists = [
        Sql("list(") + ms + ") FILTER (WHERE " + conds[k - 1] + f") AS l{k}"
        for k in range(2, len(steps) + 1)
    ]
    sql = (
        Sql("WITH s1 AS (SELECT min(")
        + ms
        + ") FILTER (WHERE "
        + conds[0]
        + ") AS t1, "
        + join(lists)
        + f" FROM {EVENTS} e WHERE "
        + plan.event_where()
        + " AND ("
        + join([Sql("(") + c + ")" for c in conds], " OR ")
        + ") GROUP BY e.visitor_id)"
    )
    for k in range(2, len(steps) + 1):
        source = "s1 WHERE t1 IS NOT NULL" if k == 2 else f"s{k - 1}"
        sql += Sql(
            f", s{k} AS (SELECT *, list_min(list_filter(l{k}, lambda x: x > t{k - 1} "
            "AND x <= t1 + ?)) AS t" + str(k) + f" FROM {source})",
            (window_ms,),
        )
    counts = ["count(*) AS n1"] + [f"count(t{k}) AS n{k}" for k in range(2, len(steps) + 1)]
    medians = [
        plan.dialect.quantile(f"((t{k + 1} - t{k}) / 1000.0)", 0.5) + f" AS m{k}"
        for k in range(1, len(steps))
    ]
    return sql + Sql(" SELECT ") + join([*counts, *medians]) + f" FROM s{len(steps)}"


def _joined(plan: Plan, steps: tuple[Step, ...], window: timedelta) -> Sql:
    """Times are integer epoch milliseconds: timestamp-with-zone plus interval arithmetic goes
    through the calendar on DuckDB and cost more than the joins. Each step reads its own
    events: the engines filter a step's rows in the scan (PostgreSQL from its (site, type, ts)
    index), which was faster than one shared, materialised table of every step's rows."""
    d = plan.dialect
    ms = d.epoch_ms("e.ts")

    def rows(step: Step) -> Sql:
        return (
            Sql(f"FROM {EVENTS} e WHERE ") + plan.event_where() + " AND " + _condition(plan, step)
        )

    window_ms = int(window.total_seconds() * 1000)
    sql = (
        Sql(
            "WITH f1 AS (SELECT v, t, t + ? AS deadline FROM (SELECT e.visitor_id AS v, min(",
            (window_ms,),
        )
        + ms
        + ") AS t "
        + rows(steps[0])
        + " GROUP BY e.visitor_id) x)"
    )
    for k in range(2, len(steps) + 1):
        sql += (
            Sql(f", f{k} AS (SELECT p.v, min(x.t) AS t, p.deadline FROM f{k - 1} p JOIN ")
            + "(SELECT e.visitor_id AS v, "
            + ms
            + " AS t "
            + rows(steps[k - 1])
            + ") x ON x.v = p.v AND x.t > p.t AND x.t <= p.deadline GROUP BY p.v, p.deadline)"
        )
    counts = ["count(*) AS n1"] + [f"count(f{k}.t) AS n{k}" for k in range(2, len(steps) + 1)]
    medians = [
        d.quantile(f"((f{k + 1}.t - f{k}.t) / 1000.0)", 0.5) + f" AS m{k}"
        for k in range(1, len(steps))
    ]
    sql += Sql(" SELECT ") + join([*counts, *medians]) + " FROM f1"
    for k in range(2, len(steps) + 1):
        sql += f" LEFT JOIN f{k} ON f{k}.v = f1.v"
    return sql


def _half_ms(seconds: float) -> float:
    """Times are whole milliseconds, so a median is a multiple of 0.5 ms: snap to it, which
    removes the engines' float noise (and makes DuckDB and PostgreSQL agree exactly)."""
    return round(seconds * 2000) / 2000


def _ratio(num: int, den: int) -> float:
    return round(num / den, 4) if den else 0.0


def funnel(
    plan: Plan, db: Executor, steps: tuple[Step, ...], window: timedelta = DEFAULT_WINDOW
) -> dict[str, Any]:
    """Per step: visitors, conversion from the first and previous step, drop-off, median time."""
    row = plan.run(db, _statement(plan, steps, window))[0]
    counts = [int(row[f"n{k}"] or 0) for k in range(1, len(steps) + 1)]
    out = []
    for k, step in enumerate(steps, 1):
        n, prev = counts[k - 1], counts[k - 2] if k > 1 else counts[0]
        median = row.get(f"m{k}")
        out.append(
            {
                "step": k,
                **step.as_json(),
                "visitors": n,
                "conversionFromFirst": _ratio(n, counts[0]),
                "conversionFromPrevious": _ratio(n, prev) if k > 1 else (1.0 if n else 0.0),
                "dropOff": prev - n,
                "medianSecondsToNext": None if median is None else _half_ms(float(median)),
            }
        )
    return {
        "windowMinutes": int(window.total_seconds() // 60),
        "entered": counts[0],
        "completed": counts[-1],
        "conversionRate": _ratio(counts[-1], counts[0]),
        "steps": out,
    }


def report(
    db: Executor, spec: ReportSpec, raw_steps: str | None, raw_window: str | None = None
) -> dict[str, Any]:
    """The funnel of `steps` (see the module docstring) for `spec`'s site, period and filters."""
    steps, window = parse_steps(raw_steps), parse_window(raw_window)
    return funnel(Plan(spec, dialect_for(db.engine)), db, steps, window)
