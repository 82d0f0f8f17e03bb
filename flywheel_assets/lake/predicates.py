"""Delta predicates built from values safely: every literal is quoted, never pasted in raw."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime


def literal(value: str | int | float | datetime) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("timestamps in predicates must carry a timezone")
        value = value.isoformat()
    if not isinstance(value, str):
        raise TypeError(f"cannot quote {type(value).__name__}")
    return "'" + value.replace("'", "''") + "'"


def column(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain column name: {name!r}")
    return name


def eq(name: str, value) -> str:
    return f"{column(name)} = {literal(value)}"


def is_in(name: str, values: Iterable) -> str | None:
    """`name IN (...)`, or None for no values (a predicate that would match nothing)."""
    quoted = sorted({literal(v) for v in values})
    if not quoted:
        return None
    return f"{column(name)} IN ({', '.join(quoted)})"


def any_of(*predicates: str | None) -> str | None:
    parts = [p for p in predicates if p]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else " OR ".join(f"({p})" for p in parts)
