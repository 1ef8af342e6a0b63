"""SQL text helpers shared by every stage that builds DuckDB queries."""

from __future__ import annotations

from typing import Any


def quote(name: str) -> str:
    """Quote ``name`` as a SQL identifier.

    Example:
        >>> quote('a"b')
        '"a""b"'
    """
    return '"' + name.replace('"', '""') + '"'


def literal(value: Any) -> str:
    """Render a Python value as a SQL literal.

    Example:
        >>> literal("O'Hare"), literal(3), literal(True)
        ("'O''Hare'", '3', 'TRUE')
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"
