"""Amounts of money in reports: rounded to cents, and kept apart by currency.

Revenue is the sum of numeric `properties.revenue`; its currency is `properties.currency`,
never converted (a server that converts would need exchange rates from the internet). A shop
selling in several currencies reads one amount per currency: adding them up would give a
number in no currency at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def money(value: Any) -> float:
    """`value` rounded to cents. Sums of floats depend on their order: settle the noise
    before rounding, so that the same events always give the same cents."""
    return round(round(float(value or 0.0), 6), 2)


def by_currency(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """`[{"currency", "revenue"}]` from rows with a `currency` and a `revenue` (several rows
    of one currency add up), by currency code, a missing currency (null) last."""
    sums: dict[str | None, float] = {}
    for r in rows:
        sums[r["currency"]] = sums.get(r["currency"], 0.0) + float(r["revenue"] or 0.0)
    order = sorted(sums, key=lambda c: (c is None, c or ""))
    return [{"currency": c, "revenue": money(sums[c])} for c in order]
