"""SQL fragments with their parameters, composed without string interpolation of values.

A `Sql` is text with `?` placeholders plus the values for them, in order. Fragments join
into larger ones; values never enter the text. The dialect turns `?` into its own
placeholder when the final statement is rendered.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Sql:
    text: str
    params: tuple[Any, ...] = field(default=())

    def __add__(self, other: Sql | str) -> Sql:
        if isinstance(other, str):
            return Sql(self.text + other, self.params)
        return Sql(self.text + other.text, self.params + other.params)

    def __radd__(self, other: str) -> Sql:
        return Sql(other + self.text, self.params)


def raw(text: str) -> Sql:
    """Trusted SQL text from code (identifiers, keywords): never user input."""
    return Sql(text)


def param(value: Any) -> Sql:
    return Sql("?", (value,))


def join(parts: Iterable[Sql | str], sep: str = ", ") -> Sql:
    items = [p if isinstance(p, Sql) else Sql(p) for p in parts]
    text = sep.join(p.text for p in items)
    params: tuple[Any, ...] = tuple(v for p in items for v in p.params)
    return Sql(text, params)


def and_(conditions: Sequence[Sql]) -> Sql:
    if not conditions:
        return Sql("TRUE")
    return join([Sql("(" + c.text + ")", c.params) for c in conditions], " AND ")


def in_list(expr: Sql, values: Sequence[Any], negate: bool = False) -> Sql:
    if not values:
        return Sql("FALSE" if not negate else "TRUE")
    placeholders = join([param(v) for v in values])
    return expr + (" NOT IN (" if negate else " IN (") + placeholders + ")"
