"""A small filter and sort language over tracked runs, parsed by hand and compiled to SQL.

A filter is one or more conditions joined by ``and``::

    metrics.auc > 0.7 and params.lr = 0.1 and params.optimizer = 'adam'
    tags.team like 'vision%' and status = 'finished' and started_at >= '2026-01-01'

Each condition is ``FIELD OPERATOR VALUE``. A field is ``metrics.KEY`` (the series' last
value), ``params.KEY``, ``tags.KEY`` or one of the run attributes ``id``, ``experiment``,
``status``, ``parent_id``, ``launcher``, ``started_at`` and ``ended_at``. Keys hold letters,
digits and ``_ . - /``; any other key is written in backquotes (``metrics.`val loss```).
Operators are ``= != < <= > >=`` and ``like`` (``%`` and ``_`` wildcards, text only,
ignoring case on every backend). Values
are numbers or quoted strings (``'...'`` or ``"..."``, a doubled quote inside is one quote);
``parent_id`` and ``ended_at`` also compare with ``null``.

A condition on a metric, parameter or tag compiles to a semi-join (``runs.id IN (SELECT
run_id ...)``) that matches on the key and the value, so the ``(key, last)``, ``(key, number)``
and ``(key, value)`` indexes answer it; a run without the key never matches.

A sort is a comma-separated list of fields, each optionally followed by ``asc`` or ``desc``;
runs missing a sort key come last.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, select
from sqlalchemy.orm import aliased

from plinth._core.clock import as_utc
from plinth.catalog.models import Run, RunMetric, RunParam, RunTag
from plinth.errors import ConfigError

__all__ = [
    "FILTER_EXAMPLE",
    "SORT_EXAMPLE",
    "Condition",
    "Field",
    "SortKey",
    "build_query",
    "filter_clause",
    "parse_filter",
    "parse_sort",
]

FILTER_EXAMPLE = "metrics.auc > 0.7 and params.lr = 0.1 and tags.team = 'vision'"
SORT_EXAMPLE = "metrics.auc desc, started_at desc"
#: Run attributes a filter or sort may name, with the column each one reads.
ATTRIBUTES: dict[str, Any] = {
    "id": Run.id,
    "experiment": Run.experiment,
    "status": Run.status,
    "parent_id": Run.parent_id,
    "launcher": Run.launcher,
    "started_at": Run.started_at,
    "ended_at": Run.ended_at,
}
TIME_ATTRIBUTES = frozenset({"started_at", "ended_at"})
NULLABLE_ATTRIBUTES = frozenset({"parent_id", "ended_at"})
PREFIXES = {"metrics": "metric", "params": "param", "tags": "tag"}
OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_KEYWORDS = frozenset({"and", "like", "null", "asc", "desc"})


# -- tokens ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    """One lexical token: its kind, its source text, its 1-based position and its value.

    Kinds: ``name`` (value: list of (text, quoted) segments), ``number``, ``string``, ``op``,
    ``comma``, a keyword (``and``, ``like``, ``null``, ``asc``, ``desc``) and ``end``.
    """

    kind: str
    text: str
    position: int
    value: Any = None

    def describe(self) -> str:
        """The token as an error message quotes it."""
        return "the end of the text" if self.kind == "end" else f"'{self.text}'"


def _syntax_error(what: str, text: str, position: int, message: str) -> ConfigError:
    example = FILTER_EXAMPLE if what == "filter" else SORT_EXAMPLE
    return ConfigError(
        f"The {what} '{text}' is malformed at position {position}: {message}",
        hint=f"Write it like: {example}",
    )


def _read_quoted(text: str, start: int, quote: str, what: str) -> tuple[str, int]:
    """Read a quoted string or backquoted key at ``start``; a doubled quote is one quote."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        if text[i] == quote:
            if i + 1 < len(text) and text[i + 1] == quote:
                out.append(quote)
                i += 2
                continue
            return "".join(out), i + 1
        out.append(text[i])
        i += 1
    kind = "key" if quote == "`" else "string"
    raise _syntax_error(
        what, text, start + 1, f"the {kind} opened here with {quote} is never closed."
    )


def tokenize(text: str, what: str = "filter") -> list[Token]:
    """Split a filter or sort text into tokens, ending with an ``end`` token.

    Example:
        >>> [t.kind for t in tokenize("metrics.auc >= 0.7")]
        ['name', 'op', 'number', 'end']
    """
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        start = i
        if ch in "'\"":
            value, i = _read_quoted(text, i, ch, what)
            tokens.append(Token("string", text[start:i], start + 1, value))
        elif ch in "<>!=":
            two = text[i : i + 2]
            if two in ("<=", ">=", "!="):
                i += 2
            elif ch == "!" or two == "==":
                raise _syntax_error(
                    what,
                    text,
                    start + 1,
                    f"'{two if two == '==' else ch}' is not an operator; use one of "
                    "=, !=, <, <=, >, >= or like.",
                )
            else:
                i += 1
            tokens.append(Token("op", text[start:i], start + 1, text[start:i]))
        elif ch == ",":
            i += 1
            tokens.append(Token("comma", ",", start + 1))
        elif ch.isdigit() or (ch in "+-." and _NUMBER.match(text, i)):
            match = _NUMBER.match(text, i)
            assert match is not None
            i = match.end()
            if i < n and (text[i] in _KEY_CHARS or text[i] == "`"):
                while i < n and text[i] in _KEY_CHARS:
                    i += 1
                raise _syntax_error(what, text, start + 1, f"'{text[start:i]}' is not a number.")
            tokens.append(Token("number", text[start:i], start + 1, float(match.group())))
        elif ch in _KEY_CHARS or ch == "`":
            segments: list[tuple[str, bool]] = []
            while i < n and (text[i] in _KEY_CHARS or text[i] == "`"):
                if text[i] == "`":
                    value, i = _read_quoted(text, i, "`", what)
                    segments.append((value, True))
                else:
                    j = i
                    while j < n and text[j] in _KEY_CHARS:
                        j += 1
                    segments.append((text[i:j], False))
                    i = j
            word = text[start:i]
            if len(segments) == 1 and not segments[0][1] and word.lower() in _KEYWORDS:
                tokens.append(Token(word.lower(), word, start + 1))
            else:
                tokens.append(Token("name", word, start + 1, segments))
        else:
            raise _syntax_error(what, text, start + 1, f"unexpected character '{ch}'.")
    tokens.append(Token("end", "", n + 1))
    return tokens


# -- parsed forms ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """What a condition or sort key reads: a metric, parameter or tag by key, or an attribute.

    Example:
        >>> str(Field("metric", "val/loss"))
        'metrics.val/loss'
    """

    kind: str
    key: str

    def __str__(self) -> str:
        if self.kind == "attribute":
            return self.key
        prefix = {"metric": "metrics", "param": "params", "tag": "tags"}[self.kind]
        plain = self.key and all(c in _KEY_CHARS for c in self.key)
        return f"{prefix}.{self.key}" if plain else f"{prefix}.`{self.key.replace('`', '``')}`"


@dataclass(frozen=True)
class Condition:
    """One ``FIELD OPERATOR VALUE`` condition; ``value`` is a float, str, datetime or None."""

    field: Field
    op: str
    value: float | str | datetime | None


@dataclass(frozen=True)
class SortKey:
    """One sort key: a field and a direction."""

    field: Field
    descending: bool = False


def _field(token: Token, text: str, what: str) -> Field:
    segments: list[tuple[str, bool]] = token.value
    head, quoted = segments[0]
    if not quoted and "." in head:
        prefix, rest = head.split(".", 1)
        kind = PREFIXES.get(prefix.lower())
        if kind is None:
            raise _syntax_error(
                what,
                text,
                token.position,
                f"'{prefix}' is not a field prefix; use metrics., params. or tags.",
            )
        key = rest + "".join(part for part, _ in segments[1:])
        if not key:
            raise _syntax_error(what, text, token.position, f"'{token.text}' names no key.")
        return Field(kind, key)
    if len(segments) == 1 and not quoted and head.lower() in ATTRIBUTES:
        return Field("attribute", head.lower())
    raise _syntax_error(
        what,
        text,
        token.position,
        f"'{token.text}' is not a field. Fields are metrics.KEY, params.KEY, tags.KEY or one "
        f"of: {', '.join(ATTRIBUTES)}.",
    )


def _parse_time(token: Token, text: str) -> datetime:
    raw = str(token.value).strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        return as_utc(datetime.fromisoformat(raw))
    except ValueError:
        raise _syntax_error(
            "filter",
            text,
            token.position,
            f"{token.describe()} is not an ISO 8601 time such as '2026-01-31T12:00:00Z'.",
        ) from None


def _condition(field: Field, op: Token, value: Token, text: str) -> Condition:
    """Check that the operator and value suit the field, and build the condition."""
    name = str(field)
    if value.kind == "null":
        if field.kind != "attribute" or field.key not in NULLABLE_ATTRIBUTES:
            raise _syntax_error(
                "filter",
                text,
                value.position,
                f"{name} cannot be compared with null; only parent_id and ended_at can.",
            )
        if op.kind != "op" or op.value not in ("=", "!="):
            raise _syntax_error(
                "filter", text, op.position, "compare with null using = or != only."
            )
        return Condition(field, op.value, None)
    is_like = op.kind == "like"
    opname = "like" if is_like else op.value
    if field.kind == "metric":
        if is_like or value.kind != "number":
            position = op.position if is_like else value.position
            found = "like" if is_like else value.describe()
            raise _syntax_error(
                "filter",
                text,
                position,
                f"metric values are numbers, so {name} cannot take {found}; compare it with "
                "=, !=, <, <=, > or >= and a number.",
            )
        return Condition(field, opname, value.value)
    if field.kind == "param":
        if is_like and value.kind != "string":
            raise _syntax_error(
                "filter", text, value.position, "like needs a quoted pattern such as 'adam%'."
            )
        return Condition(field, opname, value.value)
    if value.kind != "string":
        what = "tag values" if field.kind == "tag" else f"values of {name}"
        raise _syntax_error(
            "filter",
            text,
            value.position,
            f"{what} are text, so quote {value.describe()} (e.g. {name} = '{value.text}').",
        )
    if field.kind == "attribute" and field.key in TIME_ATTRIBUTES:
        if is_like:
            raise _syntax_error(
                "filter", text, op.position, f"{name} is a time and cannot be matched with like."
            )
        return Condition(field, opname, _parse_time(value, text))
    return Condition(field, opname, value.value)


def parse_filter(text: str | None) -> list[Condition]:
    """Parse a filter into conditions (all of which must hold); empty text means no condition.

    Raises :class:`~plinth.errors.ConfigError` naming the bad token and its position.

    Example:
        >>> parse_filter("metrics.auc > 0.7 AND params.opt = 'adam'")[1]
        Condition(field=Field(kind='param', key='opt'), op='=', value='adam')
    """
    if text is None or not text.strip():
        return []
    tokens = tokenize(text, "filter")
    conditions: list[Condition] = []
    i = 0
    while True:
        head = tokens[i]
        if head.kind != "name":
            raise _syntax_error(
                "filter",
                text,
                head.position,
                f"expected a field such as metrics.auc or status, found {head.describe()}.",
            )
        field = _field(head, text, "filter")
        op = tokens[i + 1]
        if op.kind not in ("op", "like"):
            raise _syntax_error(
                "filter",
                text,
                op.position,
                f"expected an operator (=, !=, <, <=, >, >= or like) after {head.describe()}, "
                f"found {op.describe()}.",
            )
        value = tokens[i + 2]
        if value.kind not in ("number", "string", "null"):
            raise _syntax_error(
                "filter",
                text,
                value.position,
                f"expected a number or a quoted string after {op.describe()}, found "
                f"{value.describe()}.",
            )
        conditions.append(_condition(field, op, value, text))
        after = tokens[i + 3]
        if after.kind == "end":
            return conditions
        if after.kind != "and":
            raise _syntax_error(
                "filter",
                text,
                after.position,
                f"expected 'and' or the end of the filter, found {after.describe()}.",
            )
        i += 4


def parse_sort(text: str | None) -> list[SortKey]:
    """Parse a sort spec (``FIELD [asc|desc], ...``); empty text means ``started_at desc``.

    Example:
        >>> [(str(k.field), k.descending) for k in parse_sort("metrics.auc desc, params.lr")]
        [('metrics.auc', True), ('params.lr', False)]
    """
    if text is None or not text.strip():
        return [SortKey(Field("attribute", "started_at"), descending=True)]
    tokens = tokenize(text, "sort")
    keys: list[SortKey] = []
    i = 0
    while True:
        head = tokens[i]
        if head.kind != "name":
            raise _syntax_error(
                "sort",
                text,
                head.position,
                f"expected a field such as metrics.auc or started_at, found {head.describe()}.",
            )
        field = _field(head, text, "sort")
        i += 1
        descending = False
        if tokens[i].kind in ("asc", "desc"):
            descending = tokens[i].kind == "desc"
            i += 1
        keys.append(SortKey(field, descending))
        if tokens[i].kind == "end":
            return keys
        if tokens[i].kind != "comma":
            raise _syntax_error(
                "sort",
                text,
                tokens[i].position,
                f"expected asc, desc, a comma or the end, found {tokens[i].describe()}.",
            )
        i += 1


# -- SQL ---------------------------------------------------------------------------------------


def _compare(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "like":
        # ILIKE on PostgreSQL, lower() LIKE lower() on SQLite: the same answer on both.
        return column.ilike(value)
    if value is None:
        return column.is_(None) if op == "=" else column.is_not(None)
    return OPERATORS[op](column, value)


def condition_clause(condition: Condition) -> ColumnElement[bool]:
    """Compile one condition to a SQL boolean over ``runs``.

    A metric, parameter or tag condition is a semi-join, ``runs.id IN (SELECT run_id ...
    WHERE key = :key AND value_column OP :value)``: PostgreSQL plans it like the equivalent
    ``EXISTS``, and SQLite then answers it from the ``(key, last)``, ``(key, number)`` or
    ``(key, value)`` index instead of probing every run (a correlated ``EXISTS`` there always
    scans all runs).

    Example:
        >>> sql = str(condition_clause(parse_filter("metrics.auc > 0.7")[0]))
        >>> "runs.id IN (SELECT run_metrics.run_id" in sql
        True
    """
    field, op, value = condition.field, condition.op, condition.value
    if field.kind == "attribute":
        return _compare(ATTRIBUTES[field.key], op, value)
    if field.kind == "metric":
        matching = select(RunMetric.run_id).where(
            RunMetric.key == field.key, _compare(RunMetric.last, op, value)
        )
    elif field.kind == "param":
        column = RunParam.number if isinstance(value, float) else RunParam.value
        matching = select(RunParam.run_id).where(
            RunParam.key == field.key, _compare(column, op, value)
        )
    else:
        matching = select(RunTag.run_id).where(
            RunTag.key == field.key, _compare(RunTag.value, op, value)
        )
    return Run.id.in_(matching)


def exists_clause(condition: Condition) -> ColumnElement[bool]:
    """Compile one condition to a correlated ``EXISTS`` over ``runs``: cheap per run, so the
    plan that walks runs in sort-metric order (see :func:`build_query`) can stop early.

    Example:
        >>> "EXISTS" in str(exists_clause(parse_filter("params.lr = 0.1")[0]))
        True
    """
    field, op, value = condition.field, condition.op, condition.value
    if field.kind == "attribute":
        return _compare(ATTRIBUTES[field.key], op, value)
    if field.kind == "metric":
        return exists().where(
            RunMetric.run_id == Run.id,
            RunMetric.key == field.key,
            _compare(RunMetric.last, op, value),
        )
    if field.kind == "param":
        column = RunParam.number if isinstance(value, float) else RunParam.value
        return exists().where(
            RunParam.run_id == Run.id, RunParam.key == field.key, _compare(column, op, value)
        )
    return exists().where(
        RunTag.run_id == Run.id, RunTag.key == field.key, _compare(RunTag.value, op, value)
    )


def filter_clause(text: str | None) -> ColumnElement[bool] | None:
    """Compile a filter to one SQL boolean over ``runs``, or None when it has no condition.

    Example:
        >>> filter_clause("") is None
        True
    """
    clauses = [condition_clause(c) for c in parse_filter(text)]
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else and_(*clauses)


def _order(column: Any, descending: bool) -> Any:
    return (column.desc() if descending else column.asc()).nulls_last()


def apply_sort(
    statement: Select[Any], keys: list[SortKey], leading: list[Any] | None = None
) -> Select[Any]:
    """Add the sort keys to a select over ``runs``: missing keys last, then newest first, by id.

    Each metric, parameter or tag key is an outer join on its ``(run_id, key)`` unique index,
    so it adds at most one row per run. ``leading`` order terms go first.
    """
    order: list[Any] = list(leading or [])
    named: set[str] = set()
    for i, sort in enumerate(keys):
        field = sort.field
        if field.kind == "attribute":
            order.append(_order(ATTRIBUTES[field.key], sort.descending))
            named.add(field.key)
        elif field.kind == "metric":
            metric = aliased(RunMetric, name=f"sort_m{i}")
            statement = statement.outerjoin(
                metric, and_(metric.run_id == Run.id, metric.key == field.key)
            )
            order.append(_order(metric.last, sort.descending))
        elif field.kind == "param":
            param = aliased(RunParam, name=f"sort_p{i}")
            statement = statement.outerjoin(
                param, and_(param.run_id == Run.id, param.key == field.key)
            )
            # Numbers first by value; text parameters (number NULL) after, by their text.
            order.append(_order(param.number, sort.descending))
            order.append(_order(param.value, sort.descending))
        else:
            tag = aliased(RunTag, name=f"sort_t{i}")
            statement = statement.outerjoin(tag, and_(tag.run_id == Run.id, tag.key == field.key))
            order.append(_order(tag.value, sort.descending))
    if "started_at" not in named:
        order.append(Run.started_at.desc())
    if "id" not in named:
        order.append(Run.id.asc())
    return statement.order_by(*order)


def build_query(
    filter: str | None = None,
    sort: str | None = None,
    limit: int | None = 100,
    offset: int = 0,
) -> Select[Any]:
    """Build ``SELECT runs.* ...`` for a filter, a sort spec and one page of results.

    Example:
        >>> sql = str(build_query("status = 'finished'", "metrics.auc desc", limit=10))
        >>> "EXISTS" not in sql and "LEFT OUTER JOIN run_metrics" in sql
        True
    """
    if limit is not None and limit < 0:
        raise ConfigError(
            f"The limit must be zero or more, not {limit}.", hint="Pass --limit 100, say."
        )
    if offset < 0:
        raise ConfigError(
            f"The offset must be zero or more, not {offset}.", hint="Start at offset 0."
        )
    conditions = parse_filter(filter)
    keys = parse_sort(sort)
    first = keys[0] if keys else None
    if (
        first is not None
        and first.field.kind == "metric"
        and any(c.field.kind == "metric" and c.field.key == first.field.key for c in conditions)
    ):
        # The filter guarantees every match has the sort metric: walk the metric's
        # (key, last) index in sort order and test each run with correlated EXISTS, so the
        # page is found without collecting and sorting every match (100k runs: ~1 ms, not
        # ~200 ms).
        driver = aliased(RunMetric, name="drive_m")
        statement = select(Run).join(
            driver, and_(driver.run_id == Run.id, driver.key == first.field.key)
        )
        for condition in conditions:
            field = condition.field
            if field.kind == "metric" and field.key == first.field.key:
                # On the driving index itself: a range scan, not a probe per run.
                statement = statement.where(_compare(driver.last, condition.op, condition.value))
            else:
                statement = statement.where(exists_clause(condition))
        statement = apply_sort(statement, keys[1:], leading=[_order(driver.last, first.descending)])
    else:
        clauses = [condition_clause(c) for c in conditions]
        statement = select(Run)
        if clauses:
            statement = statement.where(and_(*clauses) if len(clauses) > 1 else clauses[0])
        statement = apply_sort(statement, keys)
    if limit is not None:
        statement = statement.limit(limit)
    if offset:
        statement = statement.offset(offset)
    return statement
