"""Alert rules: YAML declarations of conditions over monitoring facts, and what to do then.

A rules file lists rules; each names a model, a condition over *facts* (numbers such as
``drift.share`` or ``drift.weather__temp.psi`` computed for the model over a window) and the
actions to take when the condition starts to hold::

    rules:
      - name: weather-drift            # unique, [a-z0-9_-]+
        model: delay@champion          # a model URI
        when: drift.share >= 0.3 or drift.weather__temp.psi > 0.25
        window: 1d                     # optional (default: the model's): its newest window
        severity: warning              # info | warning | critical, default warning
        for: 1                         # optional: consecutive holds before firing, default 1
        description: Weather inputs moved away from the training data.   # optional
        actions:
          - log
          - webhook: {url: "http://hooks.example/alerts", retries: 3, timeout_s: 5,
                      on_resolve: true, headers: {Authorization: "Bearer ..."}}
          - retrain: {pipeline: "plinth.examples.flights.pipeline:flights", params: {}}

A condition is comparisons ``FACT OP NUMBER`` (``OP`` one of ``> >= < <= == !=``) joined by
``and`` and ``or`` (``and`` binds tighter) with parentheses. A fact is a dotted name of letters,
digits and ``_``; a segment may be ``*``, which matches any one segment, so ``drift.*.psi > 0.2``
holds when any input's PSI exceeds 0.2. A fact that is absent, NaN or not a number makes its
comparison false and is reported as missing; it never raises.

Example:
    >>> rules = parse_rules('''
    ... rules:
    ...   - name: drift
    ...     model: delay@champion
    ...     when: drift.share >= 0.3
    ...     actions: [log]
    ... ''')
    >>> rule = rules.get("drift")
    >>> rule.model_name, rule.window, rule.for_, [a.kind for a in rule.actions]
    ('delay', '1d', 1, ['log'])
    >>> rule.condition.evaluate({"drift.share": 0.5}).holds
    True
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)

from plinth._core.yaml_lines import line_of, load_yaml
from plinth.errors import ConfigError

__all__ = [
    "ACTIONS",
    "Action",
    "Condition",
    "ConditionError",
    "LogAction",
    "RetrainAction",
    "Rule",
    "RuleSet",
    "Verdict",
    "WebhookAction",
    "load_rules",
    "parse_condition",
    "parse_rules",
]

#: The action names a rule may use.
ACTIONS = ("log", "webhook", "retrain")
#: Rule severities, least to most severe.
SEVERITIES = ("info", "warning", "critical")
_RULE_NAME = re.compile(r"^[a-z0-9_-]{1,128}$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_CONDITION_HINT = (
    "Write comparisons such as 'drift.share >= 0.3', joined by 'and' / 'or', "
    "with parentheses where needed."
)

# ---------------------------------------------------------------------------------------------
# Conditions: tokenizer, recursive-descent parser, evaluation
# ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<op>>=|<=|==|!=|>|<)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![A-Za-z0-9_.*])
  | (?P<name>(?:[A-Za-z_][A-Za-z0-9_]*|\*)(?:\.(?:[A-Za-z0-9_]+|\*))*)(?![A-Za-z0-9_.*])
    """,
    re.VERBOSE,
)


class ConditionError(ConfigError):
    """A rule's condition cannot be parsed; ``position`` is the 1-based character position."""

    def __init__(self, text: str, position: int, reason: str) -> None:
        self.text = text
        self.position = position
        self.reason = reason
        super().__init__(
            f"The condition {text!r} is not valid at position {position}: {reason}.",
            hint=_CONDITION_HINT,
        )


@dataclass(frozen=True)
class _Token:
    kind: str  # lparen, rparen, op, number, name, and, or, end
    text: str
    position: int  # 1-based


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    index = 0
    while index < len(text):
        match = _TOKEN.match(text, index)
        if match is None:
            chunk = re.match(r"\S+", text[index:])
            seen = chunk.group(0) if chunk else text[index]
            if seen.startswith("=") and not seen.startswith("=="):
                reason = "'=' is not an operator; use '==' to compare for equality"
            elif re.match(r"[A-Za-z_*]", seen):
                reason = (
                    f"{seen!r} is not a fact name (dotted letters, digits and '_', "
                    "where a whole segment may be '*')"
                )
            else:
                reason = f"unexpected {seen!r}"
            raise ConditionError(text, index + 1, reason)
        kind = match.lastgroup or ""
        value = match.group(0)
        if kind != "space":
            if kind == "name" and value.lower() in {"and", "or"}:
                kind = value.lower()
            tokens.append(_Token(kind, value, index + 1))
        index = match.end()
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


@dataclass(frozen=True)
class Verdict:
    """What a condition says about a set of facts.

    ``holds`` is whether it holds; ``value`` is the value of the first comparison that made it
    hold (or, when it does not hold, of the first fact found); ``matched`` lists the facts that
    satisfied their comparisons, ``missing`` the facts (or patterns) named but absent.

    Example:
        >>> parse_condition("a > 1 or b > 1").evaluate({"a": 0.0, "b": 2.0})
        Verdict(holds=True, value=2.0, matched=['b'], missing=[])
    """

    holds: bool
    value: float | None = None
    matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary.

        Example:
            >>> Verdict(False, None, [], ["a"]).to_dict()["missing"]
            ['a']
        """
        return {
            "holds": self.holds,
            "value": self.value,
            "matched": list(self.matched),
            "missing": list(self.missing),
        }


def _number(value: Any) -> float | None:
    """A fact's value as a finite-or-infinite float; NaN and non-numbers are ``None``."""
    if isinstance(value, str):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class _Comparison:
    fact: str
    op: str
    number: float

    def pattern(self) -> re.Pattern[str] | None:
        if "*" not in self.fact.split("."):
            return None
        parts = [r"[^.]+" if p == "*" else re.escape(p) for p in self.fact.split(".")]
        return re.compile(r"\.".join(parts))

    def facts(self) -> list[str]:
        return [self.fact]

    def evaluate(self, facts: Mapping[str, Any]) -> Verdict:
        pattern = self.pattern()
        if pattern is None:
            names = [self.fact] if self.fact in facts else []
        else:
            names = sorted(name for name in facts if pattern.fullmatch(name))
        values = [(name, _number(facts[name])) for name in names]
        usable = [(name, value) for name, value in values if value is not None]
        if not usable:
            return Verdict(False, None, [], [self.fact])
        compare = _OPS[self.op]
        hits = [(name, value) for name, value in usable if compare(value, self.number)]
        if self.op in {">", ">="}:
            hits.sort(key=lambda item: -item[1])  # the most extreme first (stable by name)
        elif self.op in {"<", "<="}:
            hits.sort(key=lambda item: item[1])
        if hits:
            return Verdict(True, hits[0][1], [name for name, _ in hits], [])
        return Verdict(False, usable[0][1], [], [])


@dataclass(frozen=True)
class _Junction:
    kind: str  # "and" | "or"
    parts: tuple[_Node, ...]

    def facts(self) -> list[str]:
        return _unique([name for part in self.parts for name in part.facts()])

    def evaluate(self, facts: Mapping[str, Any]) -> Verdict:
        verdicts = [part.evaluate(facts) for part in self.parts]  # all: report every missing
        matched = _unique([name for v in verdicts for name in v.matched])
        missing = _unique([name for v in verdicts for name in v.missing])
        holds = (all if self.kind == "and" else any)(v.holds for v in verdicts)
        chosen = [v for v in verdicts if v.holds] if holds else []
        chosen += [v for v in verdicts if v.value is not None]
        value = chosen[0].value if chosen else None
        return Verdict(holds, value, matched, missing)


_Node = _Comparison | _Junction


class _Parser:
    """``or_expr := and_expr ('or' and_expr)*``; ``and_expr := atom ('and' atom)*``;
    ``atom := '(' or_expr ')' | FACT OP NUMBER``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def fail(self, token: _Token, expected: str) -> ConditionError:
        seen = "the end of the condition" if token.kind == "end" else repr(token.text)
        return ConditionError(self.text, token.position, f"expected {expected}, found {seen}")

    def parse(self) -> _Node:
        if self.peek().kind == "end":
            raise ConditionError(self.text, 1, "the condition is empty")
        node = self.or_expr()
        token = self.peek()
        if token.kind != "end":
            raise self.fail(token, "'and', 'or' or the end of the condition")
        return node

    def or_expr(self) -> _Node:
        parts = [self.and_expr()]
        while self.peek().kind == "or":
            self.advance()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else _Junction("or", tuple(parts))

    def and_expr(self) -> _Node:
        parts = [self.atom()]
        while self.peek().kind == "and":
            self.advance()
            parts.append(self.atom())
        return parts[0] if len(parts) == 1 else _Junction("and", tuple(parts))

    def atom(self) -> _Node:
        token = self.advance()
        if token.kind == "lparen":
            node = self.or_expr()
            closing = self.peek()
            if closing.kind != "rparen":
                raise self.fail(closing, f"')' to close the '(' at position {token.position}")
            self.advance()
            return node
        if token.kind != "name":
            raise self.fail(token, "a fact name or '('")
        op = self.advance()
        if op.kind != "op":
            raise self.fail(op, f"a comparison (> >= < <= == !=) after {token.text!r}")
        number = self.advance()
        if number.kind != "number":
            raise self.fail(number, f"a number after {op.text!r}")
        return _Comparison(token.text, op.text, float(number.text))


class Condition:
    """A parsed rule condition: evaluate it against facts with :meth:`evaluate`.

    Example:
        >>> c = parse_condition("drift.*.psi > 0.2 and rows >= 100")
        >>> c.facts
        ['drift.*.psi', 'rows']
        >>> c.evaluate({"drift.a.psi": 0.1, "drift.b.psi": 0.3, "rows": 500}).matched
        ['drift.b.psi', 'rows']
    """

    def __init__(self, text: str, root: _Node) -> None:
        self.text = text
        self._root = root

    @property
    def facts(self) -> list[str]:
        """The facts (and ``*`` patterns) the condition names, in order of appearance."""
        return self._root.facts()

    def evaluate(self, facts: Mapping[str, Any]) -> Verdict:
        """Whether the condition holds for ``facts``; absent facts make comparisons false.

        Example:
            >>> parse_condition("a > 1 and b > 1").evaluate({"a": 2})
            Verdict(holds=False, value=2.0, matched=['a'], missing=['b'])
        """
        return self._root.evaluate(facts)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Condition({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Condition) and other._root == self._root

    def __hash__(self) -> int:
        return hash(self._root)


def parse_condition(text: str) -> Condition:
    """Parse a condition such as ``drift.share >= 0.3 or drift.*.psi > 0.25`` (no ``eval``).

    Raises :class:`ConditionError` (a :class:`~plinth.errors.ConfigError`) naming the position.

    Example:
        >>> parse_condition("a > 1 or b > 1 and c > 1").evaluate({"a": 2, "b": 0, "c": 0}).holds
        True
        >>> parse_condition("(a > 1 or b > 1) and c > 1").evaluate({"a": 2, "b": 0, "c": 0}).holds
        False
        >>> parse_condition("a >")
        Traceback (most recent call last):
        plinth.monitoring.rules.ConditionError: The condition 'a >' is not valid at position 4: \
expected a number after '>', found the end of the condition. Write comparisons such as \
'drift.share >= 0.3', joined by 'and' / 'or', with parentheses where needed.
    """
    if not isinstance(text, str):
        raise ConditionError(str(text), 1, "a condition is text such as 'drift.share >= 0.3'")
    return Condition(text.strip(), _Parser(text.strip()).parse())


# ---------------------------------------------------------------------------------------------
# Rules and actions
# ---------------------------------------------------------------------------------------------


class LogAction(BaseModel):
    """Write the alert as a ``logging.warning`` line.

    Example:
        >>> LogAction().kind
        'log'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["log"] = "log"


class WebhookAction(BaseModel):
    """POST the alert as JSON to ``url``; connection errors and 5xx are retried ``retries``
    more times with exponential backoff (0.5 s, 1 s, 2 s, ...); ``on_resolve`` also POSTs when
    the alert resolves.

    Example:
        >>> WebhookAction(url="http://localhost:9000/hook").retries
        3
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["webhook"] = "webhook"
    url: str
    retries: int = Field(default=3, ge=0, le=10)
    timeout_s: float = Field(default=5.0, gt=0, le=300)
    on_resolve: bool = False
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"'{value}' is not an http:// or https:// URL")
        return value


class RetrainAction(BaseModel):
    """Run a pipeline (``module:function``) with ``params``, synchronously, in the workspace.

    Example:
        >>> RetrainAction(pipeline="flows:train").params
        {}
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["retrain"] = "retrain"
    pipeline: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("pipeline")
    @classmethod
    def _reference(cls, value: str) -> str:
        module, sep, function = value.rpartition(":")
        if not sep or not module.strip() or not function.strip():
            raise ValueError(f"'{value}' is not a pipeline reference; use module:function")
        return value


def _action_input(value: Any) -> Any:
    """Normalize ``log`` / ``{webhook: {...}}`` / ``{retrain: {...}}`` to ``{kind: ..., ...}``."""
    if isinstance(value, BaseModel):
        return value
    if isinstance(value, str):
        value = {value: None}
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError(
            "an action is a name such as 'log' or a one-key mapping such as 'webhook: {url: ...}'"
        )
    ((name, options),) = value.items()
    if name not in ACTIONS:
        raise ValueError(f"unknown action '{name}'; the actions are {', '.join(ACTIONS)}")
    if options is None:
        options = {}
    elif isinstance(options, str) and name == "webhook":
        options = {"url": options}
    elif isinstance(options, str) and name == "retrain":
        options = {"pipeline": options}
    elif not isinstance(options, dict):
        raise ValueError(f"the options of action '{name}' must be a mapping")
    return {**options, "kind": name}


#: One action of a rule: ``log``, ``webhook`` or ``retrain``.
Action = Annotated[
    LogAction | WebhookAction | RetrainAction,
    Field(discriminator="kind"),
    BeforeValidator(_action_input),
]


class Rule(BaseModel):
    """One alert rule: a model, a condition over its facts, a window, a severity and actions.

    ``for_`` (``for`` in YAML) is how many consecutive evaluations the condition must hold
    before the alert fires.

    Example:
        >>> rule = Rule(name="slow", model="delay@champion", when="latency.p99 > 250")
        >>> rule.severity, rule.condition.evaluate({"latency.p99": 300}).holds
        ('warning', True)
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str
    model: str
    when: str
    window: str = "1d"
    severity: Literal["info", "warning", "critical"] = "warning"
    for_: int = Field(default=1, alias="for", ge=1, le=10_000)
    description: str | None = None
    actions: list[Action] = Field(default_factory=list)

    _condition: Condition = PrivateAttr()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _RULE_NAME.match(value):
            raise ValueError(
                f"'{value}' is not a rule name; use lowercase letters, digits, '_' and '-'"
            )
        return value

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        from plinth.registry.uri import parse_uri

        try:
            parse_uri(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("when")
    @classmethod
    def _when(cls, value: str) -> str:
        try:
            parse_condition(value)
        except ConditionError as exc:
            raise ValueError(exc.message) from None
        return value.strip()

    _window = field_validator("window")(classmethod(lambda cls, v: _valid_window(v)))

    def model_post_init(self, context: Any, /) -> None:
        """Keep the parsed condition next to its text."""
        self._condition = parse_condition(self.when)

    @property
    def condition(self) -> Condition:
        """The parsed ``when`` condition."""
        return self._condition

    @property
    def model_name(self) -> str:
        """The name of the model the rule watches (``delay`` for ``delay@champion``)."""
        from plinth.registry.uri import parse_uri

        return parse_uri(self.model).name

    @property
    def window_spec(self) -> tuple[str, float]:
        """The window as :func:`~plinth.monitoring.service.parse_window` reads it."""
        from plinth.monitoring.service import parse_window

        return parse_window(self.window)


def _valid_window(value: str) -> str:
    """A window of whole hours (what the stored history sums), or a ValueError pydantic
    reports with its line."""
    from plinth.monitoring.service import parse_window

    try:
        kind, size = parse_window(value)
    except ConfigError as exc:
        raise ValueError(f"{exc.message} {exc.hint}") from None
    if kind != "time" or size % 3600:
        raise ValueError(
            f"'{value}' is not a whole number of hours; rules read the stored hourly history, "
            "so use 1h, 6h, 1d, 7d, 30d ..."
        )
    return value.strip()


class OutcomesSpec(BaseModel):
    """Where a monitored model's labels arrive (``models[].outcomes`` in a rules file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str
    label: str
    # Not "on": YAML 1.1 reads a bare 'on' key as the boolean true.
    keys: list[str] = Field(default_factory=lambda: ["request_id"], min_length=1)
    time_column: str | None = None
    tolerance: str | None = None

    @field_validator("tolerance")
    @classmethod
    def _tolerance(cls, value: str | None) -> str | None:
        from plinth.quality.contracts import parse_duration

        if value is not None:
            parse_duration(value)
        return value


class ThresholdsSpec(BaseModel):
    """Drift thresholds of a monitored model (``models[].thresholds``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    psi: float = Field(0.2, gt=0)
    wasserstein: float = Field(0.1, gt=0)
    js: float = Field(0.1, gt=0)
    share_drifted: float = Field(0.5, gt=0, le=1)


class ModelSpec(BaseModel):
    """How to monitor one model (an item of ``models:`` in a rules file)::

        models:
          - uri: delay@champion
            window: 30d                    # default window of its rules and reports
            reference_where: "month < 6"   # or reference: TABLE[@VERSION]
            thresholds: {psi: 0.2, wasserstein: 0.1, js: 0.1, share_drifted: 0.5}
            outcomes: {table: flight_outcomes, label: delayed, keys: [request_id]}
            slices: [origin]
            metrics_url: http://127.0.0.1:8000/metrics

    Example:
        >>> ModelSpec(uri="delay@champion", window="30d").target().window
        '30d'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: str
    window: str = "1d"
    reference: str | None = None
    reference_where: str | None = None
    thresholds: ThresholdsSpec = Field(default_factory=ThresholdsSpec)
    outcomes: OutcomesSpec | None = None
    slices: list[str] = Field(default_factory=list)
    metrics_url: str | None = None

    _window = field_validator("window")(classmethod(lambda cls, v: _valid_window(v)))

    def target(self) -> Any:
        """The :class:`~plinth.monitoring.facts.Target` these settings describe."""
        from plinth.monitoring.drift import Thresholds
        from plinth.monitoring.facts import Outcomes, Target
        from plinth.quality.contracts import parse_duration

        outcomes = None
        if self.outcomes is not None:
            spec = self.outcomes
            tolerance = parse_duration(spec.tolerance).total_seconds() if spec.tolerance else None
            outcomes = Outcomes(
                spec.table, spec.label, tuple(spec.keys), spec.time_column, tolerance
            )
        return Target(
            self.uri,
            self.window,
            self.reference,
            self.reference_where,
            Thresholds(**self.thresholds.model_dump()),
            outcomes,
            tuple(self.slices),
            self.metrics_url,
        )


@dataclass(frozen=True)
class RuleSet:
    """The rules of one file, in file order, with unique names.

    Example:
        >>> rules = RuleSet((Rule(name="a", model="m", when="x > 1"),))
        >>> [r.name for r in rules], len(rules), rules.for_model("m")[0].name
        (['a'], 1, 'a')
    """

    rules: tuple[Rule, ...] = ()
    origin: str = "<string>"
    models: tuple[ModelSpec, ...] = ()

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ConfigError(
                    f"{self.origin}: two rules are called '{rule.name}'.",
                    hint="Give every rule its own name.",
                )
            seen.add(rule.name)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    @property
    def names(self) -> list[str]:
        """The rule names, in file order."""
        return [rule.name for rule in self.rules]

    def get(self, name: str) -> Rule:
        """The rule called ``name``.

        Example:
            >>> RuleSet((Rule(name="a", model="m", when="x > 1"),)).get("a").when
            'x > 1'
        """
        from plinth.errors import NotFoundError

        for rule in self.rules:
            if rule.name == name:
                return rule
        raise NotFoundError(
            f"{self.origin} has no rule called '{name}'.",
            hint=f"Its rules are: {', '.join(self.names) or '(none)'}.",
        )

    def for_model(self, model_name: str) -> list[Rule]:
        """The rules watching the model called ``model_name``."""
        return [rule for rule in self.rules if rule.model_name == model_name]

    def target(self, uri: str) -> Any:
        """How to monitor ``uri``: its ``models:`` entry (same URI, else same model name), or
        the defaults.

        Example:
            >>> RuleSet().target("delay@champion").window
            '1d'
        """
        from plinth.monitoring.facts import Target

        name = uri.split("@")[0].split(":")[0]
        for spec in self.models:
            if spec.uri == uri:
                return spec.target()
        for spec in self.models:
            if spec.uri.split("@")[0].split(":")[0] == name:
                return spec.target()
        return Target(uri)

    def targets(self) -> list[Any]:
        """Every model to monitor: the ``models:`` entries, then rule models not listed there."""
        uris = [spec.uri for spec in self.models]
        for rule in self.rules:
            if rule.model not in uris and rule.model_name not in {
                u.split("@")[0].split(":")[0] for u in uris
            }:
                uris.append(rule.model)
        return [self.target(uri) for uri in uris]


class _RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: list[ModelSpec] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)


def _rule_label(data: Any, index: int) -> str:
    try:
        name = data["rules"][index]["name"]
    except (KeyError, IndexError, TypeError):
        name = None
    return f"rule '{name}'" if isinstance(name, str) else f"rule {index + 1}"


def _problem(text: str, data: Any, loc: tuple[Any, ...], message: str) -> str:
    message = message.removeprefix("Value error, ").rstrip(".")
    line = line_of(text, loc)
    where = f"line {line}" if line else "top level"
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        label = _rule_label(data, loc[1])
        rest = ".".join(str(p) for p in loc[2:])
        return f"{where}: {label}{', ' + rest if rest else ''}: {message}"
    path = ".".join(str(p) for p in loc) or "(root)"
    return f"{where}: {path}: {message}"


def parse_rules(text: str, origin: str = "<string>") -> RuleSet:
    """Parse and validate a YAML rules file; errors name the file, line, rule and field.

    Example:
        >>> parse_rules("rules:\\n  - {name: a, model: m, when: 'x > 1'}\\n").names
        ['a']
        >>> parse_rules("rules:\\n  - {name: a, model: m, when: 'x >', actions: [log]}\\n")
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        plinth.errors.ConfigError: <string> is not a valid rules file: line 2: rule 'a', when: \
The condition 'x >' is not valid at position 4: ...
    """
    data = load_yaml(text, origin, "rules file")
    if data is None:
        data = {"rules": []}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{origin}: a rules file must be a mapping with a 'rules:' list.",
            hint="Start the file with 'rules:' and list one rule per item.",
        )
    hint = "See the plinth.monitoring.rules module documentation for the rules format."
    raw = data.get("rules")
    if isinstance(raw, list):
        seen: dict[str, int] = {}
        for index, item in enumerate(raw):
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str):
                continue
            if name in seen:
                line = line_of(text, ("rules", index, "name"))
                raise ConfigError(
                    f"{origin}, line {line}: two rules are called '{name}' "
                    f"(rules {seen[name] + 1} and {index + 1}).",
                    hint="Give every rule its own name.",
                )
            seen[name] = index
    try:
        parsed = _RulesFile.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(text, data, tuple(err["loc"]), err["msg"]) for err in exc.errors()]
        raise ConfigError(
            f"{origin} is not a valid rules file: {'; '.join(problems)}.", hint=hint
        ) from exc
    return RuleSet(tuple(parsed.rules), origin, tuple(parsed.models))


def load_rules(path: str | Path) -> RuleSet:
    """Load and validate a YAML rules file.

    Example:
        >>> # load_rules("monitoring/rules.yaml").names
    """
    from plinth._core.files import read_text

    text = read_text(
        path,
        what="the alert rules file",
        hint="Check the path of the rules file.",
    )
    return parse_rules(text, str(path))
