"""Entry points the web layer calls: spec in, plain data out."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cadlink.query.dialects import dialect_for
from cadlink.query.plan import Executor, Plan
from cadlink.query.reports import overview
from cadlink.query.spec import ReportSpec


def plan_for(db: Executor, spec: ReportSpec) -> Plan:
    return Plan(spec, dialect_for(db.engine))


def dashboard(db: Executor, spec: ReportSpec, now: datetime | None = None) -> dict[str, Any]:
    return overview.dashboard(plan_for(db, spec), db, now=now)
