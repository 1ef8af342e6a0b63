"""Alerts: evaluate rules against facts, keep alert state in the catalog, and run actions.

Each (rule, model) pair moves through a small state machine, one catalog transaction per
evaluation::

    condition holds,  no open alert      → pending (if ``for`` > 1) or fired
    condition holds,  pending            → pending, or fired once ``for`` holds are counted
    condition holds,  firing             → firing (deduplicated: no action runs again)
    condition fails,  firing             → resolved
    condition fails,  pending            → ok (the pending row is dropped: it never fired)
    condition fails,  no open alert      → ok

**Pending state.** While a rule with ``for: N`` (N > 1) has held fewer than N consecutive
times, its alert row exists with ``state="pending"`` and ``evaluations`` counting the holds so
far (``fired_at`` is when it was first seen). It has no events. On the N-th hold the row turns
``firing``, ``fired_at`` becomes that time and the ``fired`` event and actions follow; if the
condition fails first, the row is deleted, so the alerts table holds only real episodes plus
the open pending ones. A later firing after a resolution opens a new alert row.

**Concurrency.** The check for an open alert and its insert or update happen in one catalog
transaction: SQLite sessions begin with ``BEGIN IMMEDIATE``, which serializes writers;
PostgreSQL takes a transaction-scoped advisory lock on the (rule, model) pair first. So two
``monitor run`` processes never both open an alert for the same rule and model, and only the
process that made the transition runs its actions. Actions run after that transaction commits
(a retrain pipeline writes to the catalog itself); each outcome is appended as an ``action``
event in its own transaction.

**Actions** never raise out of :meth:`AlertManager.evaluate`: ``log`` writes a
``logging.warning`` line; ``webhook`` POSTs JSON (``alert_id``, ``rule``, ``model``, ``state``,
``severity``, ``condition``, ``value``, ``message``, ``fired_at``, ``resolved_at``,
``details``), retrying connection errors and 5xx answers with exponential backoff (0.5 s, 1 s,
2 s, ...) but not 4xx; ``retrain`` runs a pipeline synchronously and records its run id. A
failure is recorded as an event with ``status="failed"`` and logged.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from plinth._core.clock import as_utc, utcnow
from plinth.errors import ConfigError, NotFoundError
from plinth.monitoring.rules import (
    Action,
    LogAction,
    RetrainAction,
    Rule,
    Verdict,
    WebhookAction,
)

if TYPE_CHECKING:
    from plinth.catalog.models import Alert, AlertEvent
    from plinth.workspace import Workspace

__all__ = [
    "ActionResult",
    "AlertEventInfo",
    "AlertInfo",
    "AlertManager",
    "AlertNotFoundError",
    "AlertOutcome",
    "HttpPost",
]

logger = logging.getLogger(__name__)

#: The states an alert row can be in.
STATES = ("pending", "firing", "resolved")
_OPEN = ("pending", "firing")
#: What one evaluation did to a rule's alert.
Transition = Literal["fired", "firing", "resolved", "ok", "pending"]
#: ``http_post(url, payload, *, timeout, headers) -> status code``; raising means the request
#: did not get an answer (it is retried).
HttpPost = Callable[..., int]
_BACKOFF_S = 0.5


class AlertNotFoundError(NotFoundError):
    """No alert has the given id."""


def _finite(value: Any) -> float | None:
    """A JSON-safe number: NaN, infinities and non-numbers become ``None``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class AlertInfo:
    """One alert as the catalog holds it: an episode of a rule firing for a model.

    Example:
        >>> # [a.to_dict() for a in AlertManager(ws).alerts(state="firing")]
    """

    id: int
    rule: str
    model: str
    severity: str
    state: str
    condition: str
    value: float | None
    message: str
    details: dict[str, Any]
    evaluations: int
    fired_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (times as ISO 8601)."""
        return {
            "id": self.id,
            "rule": self.rule,
            "model": self.model,
            "severity": self.severity,
            "state": self.state,
            "condition": self.condition,
            "value": _finite(self.value),
            "message": self.message,
            "details": self.details,
            "evaluations": self.evaluations,
            "fired_at": _iso(self.fired_at),
            "last_seen_at": _iso(self.last_seen_at),
            "resolved_at": _iso(self.resolved_at),
        }


@dataclass(frozen=True)
class AlertEventInfo:
    """Something that happened to an alert: ``fired``, ``resolved`` or an ``action`` outcome.

    Example:
        >>> # [(e.kind, e.action, e.status) for e in AlertManager(ws).history(1)]
    """

    id: int
    alert_id: int
    at: datetime
    kind: str
    action: str | None
    status: str | None
    details: dict[str, Any]
    pipeline_run_id: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (times as ISO 8601)."""
        return {
            "id": self.id,
            "alert_id": self.alert_id,
            "at": _iso(self.at),
            "kind": self.kind,
            "action": self.action,
            "status": self.status,
            "details": self.details,
            "pipeline_run_id": self.pipeline_run_id,
        }


@dataclass(frozen=True)
class ActionResult:
    """The outcome of one action: ``status`` is ``ok`` or ``failed``; ``details`` say more.

    Example:
        >>> ActionResult("log", "ok", {"message": "m"}).to_dict()["status"]
        'ok'
    """

    action: str
    status: Literal["ok", "failed"]
    details: dict[str, Any] = field(default_factory=dict)
    pipeline_run_id: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the action succeeded."""
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "action": self.action,
            "status": self.status,
            "details": self.details,
            "pipeline_run_id": self.pipeline_run_id,
        }


@dataclass(frozen=True)
class AlertOutcome:
    """What one evaluation of a rule for a model did.

    ``transition`` is ``fired`` (a new alert, actions ran), ``firing`` (still firing,
    deduplicated), ``resolved``, ``pending`` (holding, but not yet ``for`` times) or ``ok``.

    Example:
        >>> AlertOutcome("r", "m", "ok", None, Verdict(False)).to_dict()["transition"]
        'ok'
    """

    rule: str
    model: str
    transition: Transition
    alert_id: int | None
    verdict: Verdict
    actions: list[ActionResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "rule": self.rule,
            "model": self.model,
            "transition": self.transition,
            "alert_id": self.alert_id,
            "verdict": {**self.verdict.to_dict(), "value": _finite(self.verdict.value)},
            "actions": [a.to_dict() for a in self.actions],
        }


def _alert_info(row: Alert) -> AlertInfo:
    return AlertInfo(
        id=row.id,
        rule=row.rule,
        model=row.model_name,
        severity=row.severity,
        state=row.state,
        condition=row.condition,
        value=row.value,
        message=row.message,
        details=dict(row.details or {}),
        evaluations=row.evaluations,
        fired_at=as_utc(row.fired_at),
        last_seen_at=as_utc(row.last_seen_at),
        resolved_at=as_utc(row.resolved_at) if row.resolved_at else None,
    )


def _event_info(row: AlertEvent) -> AlertEventInfo:
    return AlertEventInfo(
        id=row.id,
        alert_id=row.alert_id,
        at=as_utc(row.at),
        kind=row.kind,
        action=row.action,
        status=row.status,
        details=dict(row.details or {}),
        pipeline_run_id=row.pipeline_run_id,
    )


def _message(rule: Rule, model: str, verdict: Verdict) -> str:
    """``weather-drift on delay: drift.weather__temp.psi = 0.41 (drift.share >= 0.3 or ...)``."""
    if verdict.matched and verdict.value is not None:
        return f"{rule.name} on {model}: {verdict.matched[0]} = {verdict.value:.4g} ({rule.when})"
    return f"{rule.name} on {model}: {rule.when}"


def _resolve_message(rule: Rule, model: str, verdict: Verdict) -> str:
    tail = ""
    if verdict.missing:
        tail = f" (missing: {', '.join(verdict.missing)})"
    elif verdict.value is not None:
        tail = f" (value {verdict.value:.4g})"
    return f"{rule.name} on {model} resolved: {rule.when} no longer holds{tail}"


def _redacted(url: str) -> str:
    """The URL's scheme, host and port only: webhook paths and queries often carry secrets."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"


def _lock_key(rule: str, model: str) -> int:
    digest = hashlib.sha256(f"plinth-alert\0{rule}\0{model}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _default_post(url: str, payload: Mapping[str, Any], *, timeout: float, headers: Any) -> int:
    import httpx

    return httpx.post(url, json=payload, timeout=timeout, headers=dict(headers)).status_code


def _retryable() -> tuple[type[BaseException], ...]:
    """Errors that mean "no answer": connection problems and timeouts."""
    try:
        import httpx
    except ImportError:  # pragma: no cover - httpx ships with the serve extra
        return (OSError, TimeoutError)
    return (httpx.TransportError, OSError, TimeoutError)


class AlertManager:
    """Evaluate alert rules for models, keep their alerts in the catalog and run actions.

    ``http_post`` and ``sleep`` replace the webhook client and the backoff wait (tests).

    Example:
        >>> # from plinth.monitoring.rules import load_rules
        >>> # manager = AlertManager(ws)
        >>> # rule = load_rules("rules.yaml").get("weather-drift")
        >>> # outcome = manager.evaluate(rule, "delay", {"drift.share": 0.4})
        >>> # outcome.transition, outcome.alert_id
        >>> # ('fired', 1)
    """

    def __init__(
        self,
        ws: Workspace,
        *,
        http_post: HttpPost | None = None,
        sleep: Callable[[float], Any] = time.sleep,
        actor: str | None = None,
    ) -> None:
        self.ws = ws
        #: Who evaluations are recorded and audited as: the workspace's user by default, the
        #: caller when a server evaluates on someone's behalf.
        self.actor = actor or ws.settings.user
        self._http_post = http_post or _default_post
        self._sleep = sleep

    # -- evaluation -----------------------------------------------------------------------------

    def evaluate(
        self,
        rule: Rule,
        model_name: str,
        facts: Mapping[str, float],
        *,
        now: datetime | None = None,
    ) -> AlertOutcome:
        """Evaluate ``rule`` for ``model_name`` over ``facts``; move its alert and run actions.

        Actions run only on the evaluation that fires the alert (and webhooks with
        ``on_resolve`` on the one that resolves it); their failures are recorded, not raised.

        Example:
            >>> # AlertManager(ws).evaluate(rule, "delay", {"drift.share": 0.4}).transition
            >>> # 'fired'
        """
        from plinth.catalog import audit
        from plinth.catalog.models import Alert, AlertEvent

        now = as_utc(now) if now is not None else utcnow()
        verdict = rule.condition.evaluate(facts)
        user = self.actor
        details = self._details(rule, verdict, facts, user)
        message = _message(rule, model_name, verdict)
        value = None if verdict.value is None or math.isnan(verdict.value) else verdict.value
        transition: Transition
        with self.ws.catalog.session() as session:
            row = self._open_alert(session, rule.name, model_name)
            if verdict.holds:
                if row is None:
                    pending = rule.for_ > 1
                    row = Alert(
                        rule=rule.name,
                        model_name=model_name,
                        severity=rule.severity,
                        state="pending" if pending else "firing",
                        condition=rule.when,
                        value=value,
                        message=message,
                        details=details,
                        evaluations=1,
                        fired_at=now,
                        last_seen_at=now,
                        resolved_at=None,
                    )
                    session.add(row)
                    transition = "pending" if pending else "fired"
                else:
                    row.evaluations += 1
                    row.last_seen_at = now
                    row.value = value
                    row.message = message
                    row.details = details
                    transition = "firing"
                    if row.state == "pending":
                        transition = "pending"
                        if row.evaluations >= rule.for_:
                            row.state, row.fired_at = "firing", now
                            row.severity, row.condition = rule.severity, rule.when
                            transition = "fired"
                session.flush()
                if transition == "fired":
                    session.add(
                        AlertEvent(
                            alert_id=row.id,
                            at=now,
                            kind="fired",
                            details={"message": message, "value": _finite(value), "by": user},
                        )
                    )
            elif row is not None and row.state == "pending":
                session.delete(row)
                row, transition = None, "ok"
            elif row is not None:
                row.state = "resolved"
                row.resolved_at = now
                session.add(
                    AlertEvent(
                        alert_id=row.id,
                        at=now,
                        kind="resolved",
                        details={
                            "message": _resolve_message(rule, model_name, verdict),
                            "missing": verdict.missing,
                            "by": user,
                        },
                    )
                )
                transition = "resolved"
            else:
                transition = "ok"
            if row is not None and transition in ("fired", "resolved"):
                audit.record(
                    session,
                    actor=user,
                    action="alert.fire" if transition == "fired" else "alert.resolve",
                    resource=f"alert:{row.id}",
                    details={
                        "rule": rule.name,
                        "model": model_name,
                        "severity": rule.severity,
                        "value": _finite(value),
                    },
                )
            info = _alert_info(row) if row is not None else None

        results: list[ActionResult] = []
        if info is not None and transition == "fired":
            logger.info("Alert fired: %s", info.message)
            for action in rule.actions:
                results.append(self._act(action, rule, info, "fired", info.message))
        elif info is not None and transition == "resolved":
            text_ = _resolve_message(rule, model_name, verdict)
            logger.info("Alert resolved: %s", text_)
            for action in rule.actions:
                if isinstance(action, WebhookAction) and action.on_resolve:
                    results.append(self._act(action, rule, info, "resolved", text_))
        return AlertOutcome(
            rule=rule.name,
            model=model_name,
            transition=transition,
            alert_id=info.id if info is not None else None,
            verdict=verdict,
            actions=results,
        )

    def _open_alert(self, session: Session, rule: str, model: str) -> Alert | None:
        """The rule's open (pending or firing) alert for the model, locked for this change."""
        from plinth.catalog.models import Alert

        if self.ws.catalog.dialect == "postgresql":
            session.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(rule, model)}
            )
        query = (
            select(Alert)
            .where(Alert.rule == rule, Alert.model_name == model, Alert.state.in_(_OPEN))
            .order_by(Alert.id.desc())
            .limit(1)
            .with_for_update()
        )
        return session.scalars(query).first()

    @staticmethod
    def _details(
        rule: Rule, verdict: Verdict, facts: Mapping[str, float], user: str
    ) -> dict[str, Any]:
        named = [name for name in rule.condition.facts if name in facts]
        shown = list(dict.fromkeys([*verdict.matched, *named]))
        return {
            "facts": {name: _finite(facts[name]) for name in shown},
            "matched": list(verdict.matched),
            "missing": list(verdict.missing),
            "window": rule.window,
            "model_uri": rule.model,
            "for": rule.for_,
            "by": user,
        }

    # -- actions --------------------------------------------------------------------------------

    def _act(
        self, action: Action, rule: Rule, alert: AlertInfo, event: str, message: str
    ) -> ActionResult:
        """Run one action and record its outcome; never raises."""
        try:
            if isinstance(action, LogAction):
                result = self._log(alert, event, message)
            elif isinstance(action, WebhookAction):
                result = self._webhook(action, rule, alert, event, message)
            elif isinstance(action, RetrainAction):
                result = self._retrain(action)
            else:  # pragma: no cover - the rule model admits no other action
                raise ConfigError(f"Unknown action {action!r}.")
        except Exception as exc:  # an action must not break the evaluation
            logger.exception("Alert %s: action %s raised.", alert.id, action.kind)
            result = ActionResult(action.kind, "failed", {"error": f"{type(exc).__name__}: {exc}"})
        if not result.ok:
            logger.error(
                "Alert %s (%s on %s): action %s failed: %s",
                alert.id,
                alert.rule,
                alert.model,
                result.action,
                result.details.get("error"),
            )
        try:
            self._record(alert.id, result, event)
        except Exception:
            logger.exception("Alert %s: could not record the %s action.", alert.id, result.action)
        return result

    def _record(self, alert_id: int, result: ActionResult, event: str) -> None:
        from plinth.catalog.models import AlertEvent

        with self.ws.catalog.session() as session:
            session.add(
                AlertEvent(
                    alert_id=alert_id,
                    at=utcnow(),
                    kind="action",
                    action=result.action,
                    status=result.status,
                    details={**result.details, "event": event, "by": self.actor},
                    pipeline_run_id=result.pipeline_run_id,
                )
            )

    @staticmethod
    def _log(alert: AlertInfo, event: str, message: str) -> ActionResult:
        logger.warning("[%s] alert %s %s: %s", alert.severity, alert.id, event, message)
        return ActionResult("log", "ok", {"level": "warning", "message": message})

    def _payload(self, rule: Rule, alert: AlertInfo, event: str, message: str) -> dict[str, Any]:
        return {
            "alert_id": alert.id,
            "rule": rule.name,
            "model": alert.model,
            "state": "resolved" if event == "resolved" else alert.state,
            "severity": alert.severity,
            "condition": alert.condition,
            "value": _finite(alert.value),
            "message": message,
            "fired_at": _iso(alert.fired_at),
            "resolved_at": _iso(alert.resolved_at),
            "details": alert.details,
        }

    def _webhook(
        self, action: WebhookAction, rule: Rule, alert: AlertInfo, event: str, message: str
    ) -> ActionResult:
        payload = self._payload(rule, alert, event, message)
        retryable = _retryable()
        attempts, status, error = 0, None, None
        for attempt in range(action.retries + 1):
            if attempt:
                self._sleep(_BACKOFF_S * 2 ** (attempt - 1))
            attempts += 1
            try:
                status = int(
                    self._http_post(
                        action.url, payload, timeout=action.timeout_s, headers=action.headers
                    )
                )
            except retryable as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"
                logger.warning("Webhook %s: attempt %d: %s", _redacted(action.url), attempts, error)
                continue
            if 200 <= status < 300:
                error = None
                break
            error = f"HTTP {status}"
            if status < 500:  # the receiver refused it: asking again will not help
                break
            logger.warning("Webhook %s: attempt %d: %s", _redacted(action.url), attempts, error)
        details = {"url": _redacted(action.url), "attempts": attempts, "status_code": status}
        if error is not None:
            return ActionResult("webhook", "failed", {**details, "error": error})
        return ActionResult("webhook", "ok", details)

    def _retrain(self, action: RetrainAction) -> ActionResult:
        details: dict[str, Any] = {"pipeline": action.pipeline, "params": dict(action.params)}
        try:
            result = self.ws.pipelines.run(action.pipeline, dict(action.params))
        except Exception as exc:  # a failed run raises StepFailedError with .result
            run = getattr(exc, "result", None)
            run_id = getattr(run, "run_id", None)
            details |= {"status": getattr(run, "status", None), "error": str(exc)}
            return ActionResult("retrain", "failed", details, run_id)
        details["status"] = result.status
        status: Literal["ok", "failed"] = "ok" if result.status == "succeeded" else "failed"
        return ActionResult("retrain", status, details, result.run_id)

    # -- queries --------------------------------------------------------------------------------

    def alerts(
        self,
        state: str | None = None,
        model: str | None = None,
        rule: str | None = None,
        limit: int = 100,
    ) -> list[AlertInfo]:
        """Alerts, newest first, optionally only those in ``state``, for ``model`` or ``rule``.

        Example:
            >>> # [a.message for a in AlertManager(ws).alerts(state="firing", model="delay")]
        """
        from plinth.catalog.models import Alert

        if state is not None and state not in STATES:
            raise ConfigError(
                f"'{state}' is not an alert state.", hint=f"Use one of: {', '.join(STATES)}."
            )
        query = select(Alert).order_by(Alert.fired_at.desc(), Alert.id.desc()).limit(limit)
        if state is not None:
            query = query.where(Alert.state == state)
        if model is not None:
            query = query.where(Alert.model_name == model)
        if rule is not None:
            query = query.where(Alert.rule == rule)
        with self.ws.catalog.session() as session:
            return [_alert_info(row) for row in session.scalars(query)]

    def get(self, alert_id: int) -> AlertInfo:
        """The alert with id ``alert_id``.

        Example:
            >>> # AlertManager(ws).get(1).state
        """
        from plinth.catalog.models import Alert

        with self.ws.catalog.session() as session:
            row = session.get(Alert, alert_id)
            if row is None:
                raise AlertNotFoundError(
                    f"No alert has id {alert_id}.",
                    hint="Check the id; AlertManager.alerts() lists the alerts.",
                )
            return _alert_info(row)

    def history(self, alert_id: int) -> list[AlertEventInfo]:
        """The events of an alert in the order they happened.

        Example:
            >>> # [(e.kind, e.action, e.status) for e in AlertManager(ws).history(1)]
        """
        from plinth.catalog.models import AlertEvent

        self.get(alert_id)
        query = select(AlertEvent).where(AlertEvent.alert_id == alert_id).order_by(AlertEvent.id)
        with self.ws.catalog.session() as session:
            return [_event_info(row) for row in session.scalars(query)]
