"""The runner: schedules a linted DAG on an executor, with caching, retries and records.

Steps start as soon as their upstream steps are done. Before a step starts, its cache key is
computed (code, parameters, input digests, table versions); a hit re-uses the recorded outputs
without starting anything. A failed attempt is retried per the step's policy; a step that
fails for good marks everything downstream of it skipped, while independent branches go on.
Every transition is written to the catalog as it happens.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from plinth._core.clock import utcnow
from plinth._core.ids import new_id
from plinth._core.urls import redact_text, redact_value
from plinth.errors import PlinthError, StepFailedError
from plinth.pipelines import cache, records
from plinth.pipelines.dag import Dag, Ref, StepNode, map_structure
from plinth.pipelines.executors import Executor, get_executor
from plinth.pipelines.hashing import cache_key, code_hash, json_ready
from plinth.pipelines.results import PipelineResult, StepResult
from plinth.pipelines.steps import Table
from plinth.pipelines.worker import Outcome, StepCall

if TYPE_CHECKING:
    from plinth.pipelines.definition import Pipeline
    from plinth.workspace import Workspace

__all__ = ["Event", "Runner", "run"]

RUN_PREFIX = "pr_"


@dataclass(frozen=True)
class Event:
    """A change during a run, for progress displays.

    ``kind`` is ``run_started``, ``started``, ``cached``, ``succeeded``, ``retrying``,
    ``failed``, ``skipped`` or ``run_finished``.
    """

    kind: str
    run_id: str
    step: str | None = None
    attempt: int = 0
    attempts: int = 0
    seconds: float | None = None
    message: str | None = None


@dataclass
class _State:
    node: StepNode
    status: str = "pending"
    attempts: int = 0
    key: str | None = None
    cached_from: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    tables: dict[str, int] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    logs: list[bytes] = field(default_factory=list)
    log_digest: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    retry_at: float | None = None
    clock: float = 0.0

    @property
    def name(self) -> str:
        return self.node.name


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no error message"


class Runner:
    """Run one traced DAG on an executor and record everything in the catalog.

    Example:
        >>> # Runner(ws, flow.trace(), reference="flows:flow", executor=get_executor("local")).run()
    """

    def __init__(
        self,
        ws: Workspace,
        dag: Dag,
        *,
        reference: str,
        executor: Executor,
        cache: bool = True,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.ws = ws
        self.dag = dag
        self.reference = reference
        self.executor = executor
        self.cache = cache
        self.on_event = on_event
        self.run_id = new_id(RUN_PREFIX)
        self.states = {name: _State(node) for name, node in dag.nodes.items()}
        self._code: dict[int, str] = {}
        self._settings: dict[str, Any] | None = None
        self._openlineage: Any = None
        if ws.settings.openlineage_url:
            from plinth.governance.openlineage import PipelineEvents

            self._openlineage = PipelineEvents(ws, self.run_id, dag.pipeline, dict(dag.params))

    # ------------------------------------------------------------------ events and records

    def _emit(self, kind: str, state: _State | None = None, **fields: Any) -> None:
        if self._openlineage is not None:
            self._openlineage.on(kind, state, fields.get("message"))
        if self.on_event is None:
            return
        if state is not None:
            fields.setdefault("attempt", state.attempts)
            fields.setdefault("attempts", state.node.step.retries + 1)
        self.on_event(Event(kind, self.run_id, state.name if state else None, **fields))

    @property
    def catalog(self) -> Any:
        return self.ws.catalog

    def _store_log(self, state: _State) -> None:
        if len(state.logs) > 1:
            parts = [f"--- attempt {i} ---\n".encode() + log for i, log in enumerate(state.logs, 1)]
            data = b"\n".join(parts)
        else:
            data = state.logs[0] if state.logs else b""
        if data:
            state.log_digest = self.ws.artifacts.put_bytes(data).digest

    def _record_end(self, state: _State, cache_entry: bool) -> None:
        values = {
            "status": state.status,
            "attempts": state.attempts,
            "cache_key": state.key,
            "cached_from": state.cached_from,
            "inputs": {
                "params": redact_value(state.params),
                "artifacts": state.inputs,
                "tables": state.tables,
            },
            "outputs": state.outputs or None,
            "log_digest": state.log_digest,
            "error": redact_text(state.error) if state.error else state.error,
            "started_at": state.started_at,
            "ended_at": state.ended_at,
        }
        entry = None
        if cache_entry and state.key:
            entry = {
                "cache_key": state.key,
                "step": state.node.step.reference[:256],
                "outputs": state.outputs,
                "pipeline_run_id": self.run_id,
            }
        inputs = {ref: digest for ref, digest in state.inputs.items()}
        records.finish_step(
            self.catalog,
            self.run_id,
            state.name,
            values=values,
            inputs=inputs,
            tables=state.tables,
            cache_entry=entry,
        )
        if entry is not None and state.node.step.models:
            self._store_after_key(state, entry)

    def _store_after_key(self, state: _State, entry: dict[str, Any]) -> None:
        """Also keep a step that moved an alias it reads under the key of the state it left.

        A gate that promoted its candidate would, run again against the new champion (the
        candidate itself), reach the same outcome; keying that outcome under the new state
        lets an unchanged pipeline re-run fully cached, while any other move of the alias
        still re-runs the step.
        """
        node = state.node
        after = {**state.tables, **self._alias_versions(node.step.models)}
        key = cache_key(self._code_hash(state), state.params, after, node.step.outputs)
        if key != state.key:
            cache.store(self.catalog, {**entry, "cache_key": key})

    # ------------------------------------------------------------------ scheduling

    def _code_hash(self, state: _State) -> str:
        fn = state.node.step.fn
        if id(fn) not in self._code:
            self._code[id(fn)] = code_hash(fn)
        return self._code[id(fn)]

    def _prepare(self, state: _State) -> None:
        """Resolve table versions and input digests, and compute the cache key."""
        node = state.node
        state.tables = records.table_versions(self.catalog, node.tables)
        state.inputs = {str(ref): self._digest(ref) for ref in node.refs()}

        def leaf(value: Any) -> Any:
            if isinstance(value, Ref):
                return {"$artifact": state.inputs[str(value)]}
            if isinstance(value, Table):
                return {"$table": value.name}
            return value

        state.params = json_ready({k: map_structure(v, leaf) for k, v in node.args.items()})
        keyed = {**state.tables, **self._alias_versions(node.step.models)}
        state.key = cache_key(self._code_hash(state), state.params, keyed, node.step.outputs)

    def _alias_versions(self, aliases: tuple[str, ...]) -> dict[str, int]:
        """``model:NAME@ALIAS`` -> the version it points at now (-1 when unset)."""
        if not aliases:
            return {}
        from plinth.errors import ModelNotFoundError

        found = {}
        for alias in aliases:
            try:
                found[f"model:{alias}"] = self.ws.models.resolve(alias)[1]
            except ModelNotFoundError:
                found[f"model:{alias}"] = -1
        return found

    def _digest(self, ref: Ref) -> str:
        return self.states[ref.step].outputs[ref.output]

    def _cache_hit(self, state: _State) -> bool:
        if not (self.cache and state.node.step.cache and state.key):
            return False
        found = cache.lookup(self.catalog, self.ws.artifacts, state.key, state.node.step.outputs)
        if found is None:
            return False
        outputs, run_id = found
        state.outputs, state.cached_from = outputs, run_id
        return True

    def _schedule(self, state: _State) -> None:
        start = time.perf_counter()
        try:
            self._prepare(state)
        except PlinthError as exc:
            state.started_at = state.ended_at = utcnow()
            self._fail(state, f"{exc}\n")
            return
        if self._cache_hit(state):
            state.status = "cached"
            state.started_at = state.ended_at = utcnow()
            self._record_end(state, cache_entry=False)
            self._emit(
                "cached", state, seconds=time.perf_counter() - start, message=state.cached_from
            )
            return
        self._submit(state)

    def _settings_dump(self) -> dict[str, Any]:
        if self._settings is None:
            self._settings = self.ws.settings.model_dump()
        return self._settings

    def _submit(self, state: _State) -> None:
        state.attempts += 1
        state.status = "running"
        state.retry_at = None
        if state.started_at is None:
            state.started_at = utcnow()
            state.clock = time.perf_counter()
        records.update_step(
            self.catalog,
            self.run_id,
            state.name,
            status="running",
            attempts=state.attempts,
            cache_key=state.key,
            started_at=state.started_at,
        )
        self.executor.submit(
            StepCall(
                run_id=self.run_id,
                node=state.name,
                step=state.node.step,
                args=state.node.args,
                inputs=dict(state.inputs),
                tables=dict(state.tables),
                attempt=state.attempts,
                settings=self._settings_dump(),
                storage=self.ws.settings.storage_root,
            )
        )
        self._emit("started", state)

    def _ready(self, state: _State) -> bool:
        return state.status == "pending" and all(
            self.states[up].status in ("succeeded", "cached") for up in state.node.upstream
        )

    # ------------------------------------------------------------------ outcomes

    def _handle(self, outcome: Outcome) -> None:
        state = self.states[outcome.node]
        state.logs.append(outcome.log)
        if outcome.ok:
            state.status = "succeeded"
            state.outputs = dict(outcome.outputs)
            state.error = None
            state.ended_at = utcnow()
            self._store_log(state)
            self._record_end(state, cache_entry=state.node.step.cache)
            self._emit("succeeded", state, seconds=time.perf_counter() - state.clock)
            return
        state.error = outcome.error
        step = state.node.step
        if not outcome.permanent and state.attempts <= step.retries:
            state.retry_at = time.monotonic() + step.retry_delay
            records.update_step(
                self.catalog, self.run_id, state.name, attempts=state.attempts, error=state.error
            )
            self._emit("retrying", state, seconds=step.retry_delay, message=_last_line(state.error))
            return
        state.ended_at = utcnow()
        self._fail(state, state.error or "")

    def _fail(self, state: _State, error: str) -> None:
        state.status = "failed"
        state.error = error
        self._store_log(state)
        self._record_end(state, cache_entry=False)
        self._emit(
            "failed",
            state,
            seconds=time.perf_counter() - state.clock if state.clock else None,
            message=_last_line(error),
        )
        below = self.dag.downstream(state.name)
        skipped = [n for n in self.states if n in below and self.states[n].status == "pending"]
        reason = f"Upstream step '{state.name}' failed."
        for name in skipped:
            self.states[name].status = "skipped"
            self.states[name].error = reason
        records.skip_steps(self.catalog, self.run_id, skipped, reason)
        for name in skipped:
            self._emit("skipped", self.states[name], message=reason)

    # ------------------------------------------------------------------ the loop

    def _loop(self, order: list[str]) -> None:
        while True:
            for name in order:
                state = self.states[name]
                if self._ready(state):
                    self._schedule(state)
            now = time.monotonic()
            for state in self.states.values():
                if state.retry_at is not None and state.retry_at <= now:
                    self._submit(state)
            if not any(s.status == "running" for s in self.states.values()):
                stuck = [s.name for s in self.states.values() if s.status == "pending"]
                reason = "It never became ready."
                for name in stuck:  # cannot happen in a linted DAG; never leave a step pending
                    self.states[name].status, self.states[name].error = "skipped", reason
                records.skip_steps(self.catalog, self.run_id, stuck, reason)
                return
            waits = [s.retry_at - now for s in self.states.values() if s.retry_at is not None]
            timeout = max(min(waits), 0.0) if waits else None
            for outcome in self.executor.wait(timeout):
                self._handle(outcome)

    def _abort(self, exc: BaseException) -> None:
        """Stop everything after an interrupt or an internal error, recording why."""
        message = (
            "Interrupted." if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
        )
        try:
            self.executor.cancel()
        finally:
            now = utcnow()
            for state in self.states.values():
                if state.status in ("running", "pending"):
                    was_running = state.status == "running"
                    state.status = "failed" if was_running else "skipped"
                    state.error = message
                    values: dict[str, Any] = {"status": state.status, "error": message}
                    if was_running:
                        values["ended_at"] = now
                    if was_running and self._openlineage is not None:
                        self._openlineage.on("failed", state)
                    try:
                        records.update_step(self.catalog, self.run_id, state.name, **values)
                    except Exception:
                        break
            with contextlib.suppress(Exception):
                records.finish_run(self.catalog, self.run_id, "failed", message, now)
            if self._openlineage is not None:
                self._openlineage.on("run_aborted", None, message)

    def run(self) -> PipelineResult:
        """Lint, record, run every step, and return the result (failed runs too).

        Example:
            >>> # result = runner.run(); result.status
        """
        order = self.dag.lint()
        self.executor.check(self.dag)
        started_at = utcnow()
        records.create_run(
            self.catalog,
            run_id=self.run_id,
            dag=self.dag,
            reference=self.reference,
            executor=self.executor.name,
            user=self.ws.settings.user,
            started_at=started_at,
        )
        self._emit("run_started", message=self.dag.pipeline)
        try:
            self.executor.open(self.ws)
            self._loop(order)
        except BaseException as exc:
            self._abort(exc)
            raise
        finally:
            self.executor.close()
        failed = [s for s in self.states.values() if s.status == "failed"]
        status = "failed" if failed else "succeeded"
        error = None
        if failed:
            first = failed[0]
            error = redact_text(f"Step '{first.name}' failed: {_last_line(first.error)}")
        ended_at = utcnow()
        records.finish_run(self.catalog, self.run_id, status, error, ended_at)
        result = PipelineResult(
            run_id=self.run_id,
            pipeline=self.dag.pipeline,
            status=status,
            params=dict(self.dag.params),
            steps={name: self._step_result(self.states[name]) for name in order},
            error=error,
            started_at=started_at,
            ended_at=ended_at,
            ws=self.ws,
            returns=self.dag.returns,
            single_output={
                n.name: n.step.outputs[0] for n in self.dag.nodes.values() if not n.step.multiple
            },
        )
        self._emit("run_finished", message=status, seconds=result.duration)
        return result

    @staticmethod
    def _step_result(state: _State) -> StepResult:
        return StepResult(
            name=state.name,
            status=state.status,
            attempts=state.attempts,
            cache_key=state.key,
            cached_from=state.cached_from,
            outputs=dict(state.outputs),
            error=state.error,
            log_digest=state.log_digest,
            started_at=state.started_at,
            ended_at=state.ended_at,
        )

    def failure(self, result: PipelineResult) -> StepFailedError:
        """The error for a failed run, naming the first failed step (``.result`` holds it all)."""
        failed = [s for s in result.steps.values() if s.status == "failed"]
        first = failed[0]
        skipped = result.count("skipped")
        tail = f"; {skipped} downstream step(s) skipped" if skipped else ""
        attempts = (
            f"after {first.attempts} attempts" if first.attempts > 1 else "on its only attempt"
        )
        if first.attempts == 0:
            attempts = "before it could start"
        error = StepFailedError(
            f"Pipeline '{result.pipeline}' failed: step '{first.name}' failed {attempts}: "
            f"{_last_line(first.error)}{tail}.",
            hint=f"See its traceback with 'plinth pipeline logs {result.run_id} {first.name}'.",
        )
        error.result = result  # type: ignore[attr-defined]
        return error


def run(
    pipeline: Pipeline | str | Callable[..., Any],
    params: Mapping[str, Any] | None = None,
    executor: str | Executor = "local",
    ws: Workspace | None = None,
    *,
    cache: bool = True,
    on_event: Callable[[Event], None] | None = None,
) -> PipelineResult:
    """Run a pipeline (object or ``module:function`` reference) and return its result.

    The pipeline is traced with ``params`` over its defaults and linted; a malformed one
    raises :class:`~plinth.errors.PipelineError` before anything runs. ``executor`` is
    ``"local"`` (a process per step), ``"ray"`` or an executor instance. ``cache=False``
    runs every step (their outputs still refresh the cache). A failed run raises
    :class:`~plinth.errors.StepFailedError` whose ``result`` attribute holds the
    :class:`PipelineResult`.

    Example:
        >>> # result = plinth.pipelines.run("flows:train", params={"lr": 0.1})
        >>> # result.outputs["train"]
    """
    from plinth.pipelines.definition import load_pipeline

    resolved = load_pipeline(pipeline)
    dag = resolved.trace(params)
    chosen = get_executor(executor)
    own = ws is None
    if ws is None:
        from plinth.workspace import Workspace

        ws = Workspace()
    try:
        runner = Runner(
            ws,
            dag,
            reference=resolved.reference,
            executor=chosen,
            cache=cache,
            on_event=on_event,
        )
        result = runner.run()
    finally:
        if own:
            ws.close()
    if not result.succeeded:
        raise runner.failure(result)
    return result
