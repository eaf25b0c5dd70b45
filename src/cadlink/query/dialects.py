"""Syntax per engine. A dialect renders; it never decides (decisions live in the plan)."""

from __future__ import annotations

from typing import Protocol

from cadlink.query.sql import Sql, param, raw


class Dialect(Protocol):
    name: str
    placeholder: str

    def prop(self, key: str) -> Sql:
        """An event property as text."""

    def prop_number(self, key: str) -> Sql: ...

    def distinct(self, expr: str, approx: bool) -> Sql: ...

    def contains(self, expr: Sql, needle: str) -> Sql: ...

    def quantile(self, expr: str, q: float) -> Sql: ...

    def seconds_between(self, later: str, earlier: str) -> Sql: ...

    def render(self, sql: Sql) -> tuple[str, tuple[object, ...]]: ...

    def latest(self, expr: str, order: str) -> Sql:
        """The value of `expr` on the row with the greatest `order` in the group."""

    def epoch_ms(self, column: str) -> Sql:
        """A timestamp column as integer milliseconds since the epoch."""

    def int_div(self, expr: Sql, divisor: int) -> Sql:
        """Integer division, rounding down."""


class _Common:
    placeholder = "?"

    def contains(self, expr: Sql, needle: str) -> Sql:
        # position() avoids LIKE's wildcard escaping entirely.
        return Sql("position(lower(?) IN lower(" + expr.text + ")) > 0", (needle, *expr.params))

    def render(self, sql: Sql) -> tuple[str, tuple[object, ...]]:
        text = sql.text if self.placeholder == "?" else sql.text.replace("?", self.placeholder)
        return text, sql.params


class DuckDBDialect(_Common):
    name = "duckdb"

    def prop(self, key: str) -> Sql:
        return Sql("json_extract_string(properties, ?)", ("$." + key,))

    def prop_number(self, key: str) -> Sql:
        return Sql("TRY_CAST(json_extract_string(properties, ?) AS DOUBLE)", ("$." + key,))

    def distinct(self, expr: str, approx: bool) -> Sql:
        return raw(f"approx_count_distinct({expr})" if approx else f"count(DISTINCT {expr})")

    def quantile(self, expr: str, q: float) -> Sql:
        return Sql(f"quantile_cont({expr}, ?)", (q,))

    def seconds_between(self, later: str, earlier: str) -> Sql:
        return raw(f"(epoch({later}) - epoch({earlier}))")

    def latest(self, expr: str, order: str) -> Sql:
        return raw(f"arg_max({expr}, {order})")

    def epoch_ms(self, column: str) -> Sql:
        return raw(f"epoch_ms({column})")

    def int_div(self, expr: Sql, divisor: int) -> Sql:
        return Sql("((") + expr + f") // {int(divisor)})"


class PostgresDialect(_Common):
    name = "postgresql"
    placeholder = "%s"

    def prop(self, key: str) -> Sql:
        return Sql("(properties::jsonb ->> ?)", (key,))

    def prop_number(self, key: str) -> Sql:
        # A safe numeric cast: non-numbers become NULL instead of failing the query.
        # The pattern uses {0,1}, never "?": render() turns every "?" into a placeholder.
        return Sql(
            "(CASE WHEN (properties::jsonb ->> ?) ~ "
            "'^-{0,1}[0-9]+(\\.[0-9]+){0,1}([eE][-+]{0,1}[0-9]+){0,1}$' "
            "THEN (properties::jsonb ->> ?)::float8 END)",
            (key, key),
        )

    def distinct(self, expr: str, approx: bool) -> Sql:
        return raw(f"count(DISTINCT {expr})")  # no native sketch: always exact

    def quantile(self, expr: str, q: float) -> Sql:
        return Sql(f"percentile_cont(?) WITHIN GROUP (ORDER BY {expr})", (q,))

    def seconds_between(self, later: str, earlier: str) -> Sql:
        return raw(f"EXTRACT(EPOCH FROM ({later} - {earlier}))")

    def latest(self, expr: str, order: str) -> Sql:
        return raw(f"(array_agg({expr} ORDER BY {order} DESC))[1]")

    def epoch_ms(self, column: str) -> Sql:
        return raw(f"CAST(EXTRACT(EPOCH FROM {column}) * 1000 AS BIGINT)")

    def int_div(self, expr: Sql, divisor: int) -> Sql:
        return Sql("floor((") + expr + f") / {int(divisor)}.0)::bigint"


def dialect_for(engine: str) -> Dialect:
    if engine == "duckdb":
        return DuckDBDialect()
    if engine in ("postgresql", "postgres"):
        return PostgresDialect()
    raise ValueError(f"no SQL dialect for engine {engine!r}")


__all__ = ["Dialect", "DuckDBDialect", "PostgresDialect", "dialect_for", "param"]
