"""A/B experiments: conversion per variant with a two-proportion z-test.

Within the period and the report's filters (they apply to exposures and conversions alike):

- an **exposure** is an event of type `exposure` (default `page_view`) whose property
  `property` (default `variant`) is set; a visitor belongs to the variant of their first
  exposure (earliest event; on a tie, the smallest variant text);
- `exposures`: visitors in the variant;
- `conversions`: those with a conversion event strictly after their first exposure: an
  affiliate click, purchase, form submit or copied coupon, or only events of type `goal`
  when given;
- `rate` = conversions / exposures;
- against the control (`control`, default the first variant in text order): `uplift` =
  (rate - control rate) / control rate (null when the control rate is 0), and the two-sided
  p-value of the pooled two-proportion z-test,
  z = (p - p_c) / sqrt(P(1 - P)(1/n + 1/n_c)) with P the pooled rate, p = erfc(|z| / √2)
  (null when every visitor converted or none did); `significant` when p < 0.05.
  The control's own comparison fields are null.
"""

from __future__ import annotations

import math
import re
from typing import Any

from cadlink.events import CONVERSION_EVENT_TYPES
from cadlink.query.dialects import dialect_for
from cadlink.query.plan import EVENTS, Executor, Plan
from cadlink.query.spec import QueryError, ReportSpec
from cadlink.query.sql import Sql, in_list, param

ALPHA = 0.05
MAX_VARIANTS = 100
_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_EVENT_TYPE = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


def two_proportion_test(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float] | None:
    """(z, two-sided p) for x2/n2 against x1/n1 with a pooled variance; None if undefined."""
    if n1 <= 0 or n2 <= 0:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return None
    z = (x2 / n2 - x1 / n1) / se
    return z, math.erfc(abs(z) / math.sqrt(2))


def _check(value: str, pattern: re.Pattern[str], field: str, what: str) -> str:
    if not pattern.match(value):
        raise QueryError(f"{field} must be {what}", field)
    return value


def _statement(plan: Plan, prop: str, exposure: str, goals: tuple[str, ...]) -> Sql:
    # Grouping, not a window sorted per visitor: the first exposure time per visitor, then the
    # smallest variant seen at that time; then the last conversion per visitor, which is after
    # the first exposure exactly when some conversion is. MATERIALIZED: the property is read
    # (the JSON parsed) once per exposure event, not once per use.
    return (
        Sql("WITH x AS MATERIALIZED (SELECT e.visitor_id AS v, e.ts AS t, ")
        + plan.dialect.prop(prop)
        + f" AS variant FROM {EVENTS} e WHERE "
        + plan.event_where()
        + " AND "
        + Sql("e.event_type = ?", (exposure,))
        + "), f AS (SELECT v, min(t) AS t FROM x WHERE variant IS NOT NULL GROUP BY v), "
        + "a AS (SELECT x.v, x.t, min(x.variant) AS variant FROM x JOIN f ON f.v = x.v "
        + "AND f.t = x.t WHERE x.variant IS NOT NULL GROUP BY x.v, x.t), "
        + f"c AS (SELECT e.visitor_id AS v, max(e.ts) AS last FROM {EVENTS} e WHERE "
        + plan.event_where()
        + " AND "
        + in_list(Sql("e.event_type"), goals)
        + " GROUP BY e.visitor_id) SELECT a.variant, count(*) AS exposures, "
        + "count(*) FILTER (WHERE c.last > a.t) AS conversions "
        + "FROM a LEFT JOIN c ON c.v = a.v GROUP BY a.variant ORDER BY a.variant LIMIT "
        + param(MAX_VARIANTS)
    )


def experiment(
    plan: Plan,
    db: Executor,
    prop: str = "variant",
    exposure: str = "page_view",
    goal: str | None = None,
    control: str | None = None,
) -> dict[str, Any]:
    """Per variant: exposures, conversions, rate, uplift and significance against the control."""
    _check(prop, _KEY, "property", "1-64 letters, digits or _")
    _check(exposure, _EVENT_TYPE, "exposure", "an event type")
    goals = (
        tuple(sorted(CONVERSION_EVENT_TYPES))
        if goal is None
        else (_check(goal, _EVENT_TYPE, "goal", "an event type"),)
    )
    rows = plan.run(db, _statement(plan, prop, exposure, goals))
    stats = {r["variant"]: (int(r["conversions"]), int(r["exposures"])) for r in rows}
    base = control if control is not None else (min(stats) if stats else None)
    ref = stats.get(base) if base is not None else None
    variants = []
    for name, (x, n) in sorted(stats.items()):
        rate = x / n
        row: dict[str, Any] = {"variant": name, "exposures": n, "conversions": x,
                               "rate": round(rate, 4), "uplift": None, "zScore": None,
                               "pValue": None, "significant": False}  # fmt: skip
        if ref is not None and name != base:
            xc, nc = ref
            if xc:
                row["uplift"] = round((rate - xc / nc) / (xc / nc), 4)
            test = two_proportion_test(xc, nc, x, n)
            if test is not None:
                row["zScore"], row["pValue"] = round(test[0], 4), round(test[1], 6)
                row["significant"] = test[1] < ALPHA
        variants.append(row)
    return {
        "property": prop,
        "exposureEvent": exposure,
        "goals": list(goals),
        "control": base,
        "variants": variants,
    }


def report(
    db: Executor,
    spec: ReportSpec,
    prop: str | None = None,
    exposure: str | None = None,
    goal: str | None = None,
    control: str | None = None,
) -> dict[str, Any]:
    """The experiment on `prop` (see the module docstring) for `spec`'s site and period."""
    return experiment(
        Plan(spec, dialect_for(db.engine)),
        db,
        prop or "variant",
        exposure or "page_view",
        goal or None,
        control or None,
    )
