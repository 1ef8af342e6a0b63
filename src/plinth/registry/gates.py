"""Promotion gates: score a candidate and the champion on the same held-out data, apply a
policy, store the decision with its numbers, and move the alias only on a pass.

A policy is a list of rules, each a small expression over the candidate's numbers (bare
names: ``auc``, ``log_loss``, ``p99_latency_ms`` ...) and the champion's
(``champion.auc``)::

    rules:
      - auc >= champion.auc - 0.002
      - p99_latency_ms <= 20
      - no slice auc drops > 0.02      # or: max_slice_drop('auc') <= 0.02
    slices: [origin]

A rule that names the champion passes when there is no champion yet (the first model is
judged on its absolute rules only). A rule naming a number the evaluation does not compute
is rejected before anything runs.
"""

from __future__ import annotations

import ast
import math
import operator
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from plinth.errors import ConfigError

if TYPE_CHECKING:
    from plinth.workspace import Workspace

#: Numbers the evaluation computes for a binary classifier.
METRICS = (
    "auc",
    "log_loss",
    "accuracy",
    "ece",
    "base_rate",
    "mean_score",
    "rows",
    "p50_latency_ms",
    "p99_latency_ms",
)
SLICE_METRICS = ("auc", "log_loss", "accuracy", "ece")
LATENCY_ROWS = 200
_NO_SLICE_DROP = re.compile(
    r"^\s*no\s+slice\s+([a-z_]+)\s+drops\s*(>=|>)\s*([0-9.eE+-]+)\s*$", re.IGNORECASE
)
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_ARITHMETIC: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_EXAMPLE = "auc >= champion.auc - 0.002 and p99_latency_ms <= 20"


class _NoChampion(Exception):
    """A rule needs the champion's numbers and there is no champion."""


@dataclass(frozen=True)
class Rule:
    """One policy rule: its text and its checked expression."""

    text: str
    tree: ast.Expression

    def names(self) -> tuple[set[str], set[str], set[str]]:
        """The candidate numbers, champion numbers and slice-drop metrics the rule reads."""
        own, champion, drops = set(), set(), set()
        functions = {id(n.func) for n in ast.walk(self.tree) if isinstance(n, ast.Call)}
        for node in ast.walk(self.tree):
            if id(node) in functions:
                continue
            if isinstance(node, ast.Attribute):
                champion.add(node.attr)
            elif isinstance(node, ast.Call):
                drops.add(node.args[0].value)  # type: ignore[attr-defined]
            elif isinstance(node, ast.Name) and node.id != "champion":
                own.add(node.id)
        return own, champion, drops


def _check(node: ast.AST, text: str) -> None:
    allowed = (
        ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub,
        ast.Compare, ast.BinOp, ast.Name, ast.Load, ast.Constant, ast.Attribute, ast.Call,
        *_COMPARE, *_ARITHMETIC,
    )  # fmt: skip
    for child in ast.walk(node):
        if not isinstance(child, allowed):
            raise _malformed(text, f"'{type(child).__name__}' is not allowed in a rule")
        if isinstance(child, ast.Attribute) and not (
            isinstance(child.value, ast.Name) and child.value.id == "champion"
        ):
            raise _malformed(text, "only champion.NAME may use a dot")
        if isinstance(child, ast.Call) and not (
            isinstance(child.func, ast.Name)
            and child.func.id == "max_slice_drop"
            and len(child.args) == 1
            and not child.keywords
            and isinstance(child.args[0], ast.Constant)
            and isinstance(child.args[0].value, str)
        ):
            raise _malformed(text, "the only function is max_slice_drop('metric')")
        if isinstance(child, ast.Constant) and not isinstance(child.value, int | float | str):
            raise _malformed(text, f"{child.value!r} is not a number")


def _malformed(text: str, why: str) -> ConfigError:
    return ConfigError(
        f"The gate rule '{text}' is malformed: {why}.",
        hint=f"Write rules like: {_EXAMPLE}, or 'no slice auc drops > 0.02'.",
    )


def parse_rule(text: str) -> Rule:
    """Parse one rule (see the module docstring).

    Example:
        >>> parse_rule("no slice auc drops > 0.02").text
        "max_slice_drop('auc') <= 0.02"
    """
    match = _NO_SLICE_DROP.match(text)
    if match:
        metric, bound, value = match.groups()
        text = f"max_slice_drop('{metric.lower()}') {'<=' if bound == '>' else '<'} {value}"
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise _malformed(text, f"it does not parse ({exc.msg})") from exc
    _check(tree, text)
    return Rule(text, tree)


@dataclass(frozen=True)
class Policy:
    """A promotion policy: rules, the slice columns to score, and the alias it promotes to.

    Example:
        >>> policy = Policy.parse("auc >= champion.auc - 0.002 and p99_latency_ms <= 20")
        >>> sorted(policy.metrics())
        ['auc', 'p99_latency_ms']
    """

    rules: tuple[Rule, ...]
    slices: tuple[str, ...] = ()
    promote_to: str = "champion"
    source: str = ""

    @classmethod
    def parse(cls, spec: str | Mapping[str, Any] | Sequence[str] | Path) -> Policy:
        """A policy from YAML text or a file, a mapping, a list of rules, or one expression.

        Example:
            >>> len(Policy.parse(["auc > 0.7", "p99_latency_ms <= 20"]).rules)
            2
        """
        import yaml

        if isinstance(spec, Path) or (
            isinstance(spec, str) and spec.endswith((".yaml", ".yml")) and "\n" not in spec
        ):
            path = Path(spec)
            if not path.is_file():
                raise ConfigError(
                    f"The gate policy file '{path}' does not exist.",
                    hint="Point --policy at a YAML file with a 'rules:' list.",
                )
            spec = path.read_text()
        source = spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False)
        data: Any = spec
        if isinstance(spec, str):
            try:
                data = yaml.safe_load(spec)
            except yaml.YAMLError:
                data = spec
            if not isinstance(data, dict | list):
                data = [spec]
        if isinstance(data, list):
            data = {"rules": data}
        if not isinstance(data, dict) or not isinstance(data.get("rules"), list | str):
            raise ConfigError(
                "A gate policy needs a 'rules' list.",
                hint=f"Write: rules: ['{_EXAMPLE}']",
            )
        unknown = set(data) - {"rules", "slices", "promote_to"}
        if unknown:
            raise ConfigError(
                f"The gate policy has unknown key(s): {', '.join(sorted(unknown))}.",
                hint="A policy has 'rules', and optionally 'slices' and 'promote_to'.",
            )
        rules = data["rules"] if isinstance(data["rules"], list) else [data["rules"]]
        if not rules:
            raise ConfigError("A gate policy needs at least one rule.", hint=f"e.g. {_EXAMPLE}")
        slices = data.get("slices") or []
        if isinstance(slices, str):
            slices = [slices]
        return cls(
            tuple(parse_rule(str(r)) for r in rules),
            tuple(str(s) for s in slices),
            str(data.get("promote_to") or "champion"),
            source,
        )

    def metrics(self) -> set[str]:
        """Every number the rules read (own, champion's and slice metrics)."""
        found: set[str] = set()
        for rule in self.rules:
            own, champion, drops = rule.names()
            found |= own | champion | drops
        return found

    def validate(self, available: Iterable[str] = METRICS) -> None:
        """Reject rules that read a number the evaluation does not compute.

        Example:
            >>> Policy.parse("auc > 0.7").validate()
        """
        known = set(available)
        for rule in self.rules:
            own, champion, drops = rule.names()
            unknown = sorted((own | champion) - known) + sorted(drops - set(SLICE_METRICS))
            if unknown:
                raise ConfigError(
                    f"The gate rule '{rule.text}' refers to unknown metric(s): "
                    f"{', '.join(unknown)}.",
                    hint=f"The evaluation computes: {', '.join(sorted(known))}; slice drops "
                    f"exist for: {', '.join(SLICE_METRICS)}.",
                )


@dataclass(frozen=True)
class RuleOutcome:
    """How one rule came out: passed, failed, or skipped for want of a champion."""

    rule: str
    status: str
    detail: str


@dataclass(frozen=True)
class GateResult:
    """A stored gate decision: pass or fail, why, with every number it used."""

    decision_id: int
    model: str
    candidate_version: int
    champion_version: int | None
    passed: bool
    promoted: bool
    outcomes: list[RuleOutcome]
    numbers: dict[str, Any] = field(default_factory=dict)

    @property
    def reasons(self) -> list[str]:
        """One line per rule."""
        return [f"{o.status}: {o.rule} ({o.detail})" for o in self.outcomes]


class _Evaluator:
    def __init__(self, own: Mapping[str, Any], champion: Mapping[str, Any] | None) -> None:
        self.own = own
        self.champion = champion

    def value(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return self.value(node.body)
        if isinstance(node, ast.BoolOp):
            values = [self.value(v) for v in node.values]
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.UnaryOp):
            operand = self.value(node.operand)
            return (not operand) if isinstance(node.op, ast.Not) else -operand
        if isinstance(node, ast.Compare):
            left = self.value(node.left)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = self.value(right_node)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.BinOp):
            return _ARITHMETIC[type(node.op)](self.value(node.left), self.value(node.right))
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Attribute):
            if self.champion is None:
                raise _NoChampion
            return _number(self.champion, node.attr)
        if isinstance(node, ast.Call):
            if self.champion is None:
                raise _NoChampion
            return max_slice_drop(self.own, self.champion, node.args[0].value)  # type: ignore[attr-defined]
        if isinstance(node, ast.Name):
            return _number(self.own, node.id)
        raise AssertionError(type(node).__name__)


def _number(numbers: Mapping[str, Any], name: str) -> float:
    value = numbers.get(name)
    return float("nan") if value is None else float(value)


def max_slice_drop(own: Mapping[str, Any], champion: Mapping[str, Any], metric: str) -> float:
    """The largest drop of ``metric`` from the champion to the candidate over shared slices
    (for ``log_loss`` and ``ece``, lower is better, so a rise counts as the drop).

    Example:
        >>> max_slice_drop({"slice/o=A/auc": 0.7}, {"slice/o=A/auc": 0.75}, "auc")
        0.04999999999999993
    """
    worse_is_higher = metric in ("log_loss", "ece")
    drops = [0.0]
    for key, value in own.items():
        if not key.startswith("slice/") or not key.endswith(f"/{metric}"):
            continue
        base = champion.get(key)
        if base is None or value is None or math.isnan(value) or math.isnan(base):
            continue
        drops.append(value - base if worse_is_higher else base - value)
    return max(drops)


def judge(
    policy: Policy, own: Mapping[str, Any], champion: Mapping[str, Any] | None
) -> list[RuleOutcome]:
    """Apply each rule to the candidate's and the champion's numbers.

    Example:
        >>> [o.status for o in judge(Policy.parse("auc > champion.auc"), {"auc": 0.7}, None)]
        ['skipped']
    """
    outcomes = []
    evaluator = _Evaluator(own, champion)
    for rule in policy.rules:
        try:
            ok = bool(evaluator.value(rule.tree))
        except _NoChampion:
            outcomes.append(RuleOutcome(rule.text, "skipped", "no champion to compare with"))
            continue
        own_names, champion_names, drops = rule.names()
        shown = [f"{n}={_number(own, n):.4g}" for n in sorted(own_names)]
        shown += [f"champion.{n}={_number(champion or {}, n):.4g}" for n in sorted(champion_names)]
        shown += [
            f"max_slice_drop({m})={max_slice_drop(own, champion or {}, m):.4g}"
            for m in sorted(drops)
        ]
        outcomes.append(RuleOutcome(rule.text, "passed" if ok else "failed", ", ".join(shown)))
    return outcomes


def score(model: Any, data: Any, label: str, slices: Sequence[str] = ()) -> dict[str, Any]:
    """Score a loaded model on labelled held-out data: quality, slices and latency.

    ``model`` is a :class:`~plinth.registry.records.LoadedModel`; ``data`` a DataFrame (or
    Arrow table) holding the model's inputs, ``label`` (0/1) and the slice columns.

    Example:
        >>> # score(ws.models.load("delay@champion"), holdout, "delayed", ["origin"])["auc"]
    """
    from plinth.tracking.evaluation import binary_report

    frame = data.to_pandas() if hasattr(data, "to_pandas") and not hasattr(data, "iloc") else data
    if label not in frame.columns:
        raise ConfigError(
            f"The held-out data has no label column '{label}'.",
            hint=f"Its columns are: {', '.join(map(str, frame.columns))}.",
        )
    missing = [s for s in slices if s not in frame.columns]
    if missing:
        raise ConfigError(
            f"The held-out data has no slice column(s) {', '.join(missing)}.",
            hint="Slice on columns of the held-out data, e.g. slices: [origin].",
        )
    labels = frame[label].to_numpy(dtype=np.float64)
    inputs = frame[_input_columns(model, frame, label)]
    scores = _scores(model, inputs)
    numbers: dict[str, Any] = dict(binary_report(labels, scores))
    for column in slices:
        for value, rows in frame.groupby(column, observed=True).indices.items():
            if len(rows) < 2 or len(set(labels[rows])) < 2:
                continue
            report = binary_report(labels[rows], scores[rows])
            for metric in SLICE_METRICS:
                numbers[f"slice/{column}={value}/{metric}"] = report[metric]
    numbers.update(_latency(model, inputs))
    return numbers


def _input_columns(model: Any, frame: Any, label: str) -> list[str]:
    """The model's input columns when its signature names them, else all but the label."""
    specs = getattr(getattr(model, "signature", None), "inputs", None) or ()
    names = [getattr(spec, "name", None) for spec in specs]
    if names and all(name in frame.columns for name in names):
        return [str(name) for name in names]
    return [c for c in frame.columns if c != label]


def _scores(model: Any, inputs: Any) -> np.ndarray:
    raw = model.raw
    if hasattr(raw, "predict_proba"):
        return np.asarray(model.predict_proba(inputs))[:, 1]
    return np.asarray(model.predict(inputs), dtype=np.float64).ravel()


def _latency(model: Any, inputs: Any) -> dict[str, float]:
    """One-row prediction latency in milliseconds, as a serving call would see it."""
    rows = inputs.iloc[: min(LATENCY_ROWS, len(inputs))]
    timings = []
    for i in range(len(rows)):
        one = rows.iloc[i : i + 1]
        start = time.perf_counter()
        _scores(model, one)
        timings.append((time.perf_counter() - start) * 1000)
    if not timings:
        return {}
    return {
        "p50_latency_ms": float(np.percentile(timings, 50)),
        "p99_latency_ms": float(np.percentile(timings, 99)),
    }


def gate(
    ws: Workspace,
    candidate: str,
    data: Any,
    label: str,
    policy: Policy | str | Mapping[str, Any] | Sequence[str] | Path,
    *,
    pipeline_run_id: str | None = None,
    promote: bool = True,
) -> GateResult:
    """Score ``candidate`` and the current holder of the policy's alias on ``data``, decide,
    store the decision, and move the alias to the candidate only if every rule passed.

    Example:
        >>> # gate(ws, "delay:4", holdout, "delayed", "auc >= champion.auc - 0.002")
    """
    from plinth.errors import ModelNotFoundError

    policy = policy if isinstance(policy, Policy) else Policy.parse(policy)
    policy.validate()
    name, version = ws.models.resolve(candidate)
    try:
        _, champion_version = ws.models.resolve(f"{name}@{policy.promote_to}")
    except ModelNotFoundError:
        champion_version = None
    if champion_version == version:
        champion_version = None  # re-judging the holder: judge it on its absolute rules
    own = score(ws.models.load(f"{name}:{version}"), data, label, policy.slices)
    champion = (
        score(ws.models.load(f"{name}:{champion_version}"), data, label, policy.slices)
        if champion_version is not None
        else None
    )
    outcomes = judge(policy, own, champion)
    passed = all(o.status != "failed" for o in outcomes)
    numbers = {"candidate": _plain(own), "champion": _plain(champion) if champion else None}
    decision_id = _record(ws, name, version, champion_version, policy, passed, numbers,
                          outcomes, pipeline_run_id)  # fmt: skip
    promoted = False
    if passed and promote:
        summary = "; ".join(o.rule for o in outcomes if o.status == "passed") or "no rules"
        ws.models.set_alias(name, policy.promote_to, version, reason=f"gate {decision_id}: "
                            f"{summary}")  # fmt: skip
        promoted = True
    return GateResult(decision_id, name, version, champion_version, passed, promoted,
                      outcomes, numbers)  # fmt: skip


def _plain(numbers: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in
            (numbers or {}).items()}  # fmt: skip


def _record(
    ws: Workspace,
    name: str,
    version: int,
    champion_version: int | None,
    policy: Policy,
    passed: bool,
    numbers: dict[str, Any],
    outcomes: list[RuleOutcome],
    pipeline_run_id: str | None,
) -> int:
    from plinth._core.clock import utcnow
    from plinth.catalog import audit
    from plinth.catalog.lineage import Node, add_edge
    from plinth.catalog.models import GateDecision

    with ws.catalog.session() as session:
        decision = GateDecision(
            model_name=name,
            candidate_version=version,
            champion_version=champion_version,
            policy=policy.source or "\n".join(r.text for r in policy.rules),
            passed=passed,
            numbers=numbers,
            reasons=[o.__dict__ for o in outcomes],
            pipeline_run_id=pipeline_run_id,
            decided_at=utcnow(),
            decided_by=ws.settings.user,
        )
        session.add(decision)
        session.flush()
        add_edge(session, Node("model_version", f"{name}/{version}"),
                 Node("gate_decision", str(decision.id)), "judged_by")  # fmt: skip
        audit.record(
            session,
            actor=ws.settings.user,
            action="gate.decision",
            resource=f"model:{name}:{version}",
            details={
                "passed": passed,
                "champion": champion_version,
                "alias": policy.promote_to,
                "decision_id": int(decision.id),
                "pipeline_run_id": pipeline_run_id,
            },
        )
        return int(decision.id)


def decisions(ws: Workspace, name: str, version: int | None = None) -> list[dict[str, Any]]:
    """The stored gate decisions of a model (one version, or all), newest first.

    Example:
        >>> # decisions(ws, "delay")[0]["passed"]
    """
    from plinth.catalog.models import GateDecision

    where = [GateDecision.model_name == name]
    if version is not None:
        where.append(GateDecision.candidate_version == version)
    return _decisions(ws, where)


def decisions_of_run(ws: Workspace, pipeline_run_id: str) -> list[dict[str, Any]]:
    """The gate decisions a pipeline run made, newest first.

    Example:
        >>> # [d["passed"] for d in decisions_of_run(ws, result.run_id)]
    """
    from plinth.catalog.models import GateDecision

    return _decisions(ws, [GateDecision.pipeline_run_id == pipeline_run_id])


def _decisions(ws: Workspace, where: list[Any]) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from plinth.catalog.models import GateDecision

    query = select(GateDecision).where(*where).order_by(GateDecision.id.desc())
    with ws.catalog.session() as session:
        return [
            {
                "id": r.id,
                "model": r.model_name,
                "candidate_version": r.candidate_version,
                "champion_version": r.champion_version,
                "passed": r.passed,
                "reasons": r.reasons,
                "numbers": r.numbers,
                "policy": r.policy,
                "pipeline_run_id": r.pipeline_run_id,
                "decided_at": r.decided_at.isoformat(),
                "decided_by": r.decided_by,
            }
            for r in session.scalars(query)
        ]
