"""OpenLineage run events for ingests, pipeline steps and training runs.

With ``PLINTH_OPENLINEAGE_URL`` set, each of these emits a ``START`` event when it begins and
a ``COMPLETE`` or ``FAIL`` (``ABORT`` for a killed run) when it ends, with the datasets it read
and wrote (OpenLineage 2-0-2 ``RunEvent``):

- an ingest (job ``ingest.<table>``): the source files (their content hash as the dataset
  version) into the lake table at its new version;
- a pipeline run (job ``pipeline.<name>``) and each of its steps (job ``<name>.<step>``, with a
  ``parent`` facet naming the pipeline run): table versions and artifacts in, artifacts out;
- a training run (job ``train.<experiment>``): training sets and table versions it used in,
  the model versions registered from it out.

An ``http(s)://`` URL receives each event as a JSON ``POST`` (short timeout, two retries; after
a failed delivery the endpoint is skipped for :data:`PAUSE_S` seconds). Any other value is a
file that gets one JSON event per line, appended under a lock. Delivery never raises into the
work that emits: a failure is logged and the work goes on. With the URL empty nothing here is
imported or run.

Example:
    >>> event = run_event("START", "ingest.flights", run_uuid("ingest", "ing_1"), "plinth/demo")
    >>> event["eventType"], event["job"]["name"]
    ('START', 'ingest.flights')
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plinth._core.settings import Settings
    from plinth.lake.records import VersionInfo
    from plinth.workspace import Workspace

__all__ = ["Emitter", "PipelineEvents", "attach", "emit", "run_event", "run_uuid", "training_event"]

log = logging.getLogger(__name__)

PRODUCER = "https://pypi.org/project/plinth-ai/0.1.0/"
SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
_FACETS = "https://openlineage.io/spec/facets/"
#: Seconds one HTTP attempt may take, and the pauses before each retry.
TIMEOUT_S, RETRY_PAUSES_S = 2.0, (0.2, 0.5)
#: After a failed delivery, an HTTP endpoint is skipped for this many seconds.
PAUSE_S = 30.0
_END = {"finished": "COMPLETE", "succeeded": "COMPLETE", "failed": "FAIL", "killed": "ABORT"}


def run_uuid(kind: str, ident: str) -> str:
    """The OpenLineage ``runId`` of a Plinth object: a UUID derived from its kind and id.

    Example:
        >>> run_uuid("run", "run_01") == run_uuid("run", "run_01")
        True
    """
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"plinth:{kind}:{ident}"))


def facet(schema: str, **fields: Any) -> dict[str, Any]:
    """A facet with its producer and schema URL (``schema`` is relative to the facet specs).

    Example:
        >>> facet("1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet",
        ...       datasetVersion="3")["datasetVersion"]
        '3'
    """
    url = schema if "://" in schema else _FACETS + schema
    return {"_producer": PRODUCER, "_schemaURL": url, **fields}


def _plinth_facet(**fields: Any) -> dict[str, Any]:
    return facet(f"{PRODUCER}#PlinthFacet", **{k: v for k, v in fields.items() if v is not None})


def _version_facet(version: Any) -> dict[str, Any]:
    schema = "1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet"
    return facet(schema, datasetVersion=str(version))


def dataset(
    namespace: str,
    name: str,
    version: Any = None,
    facets: Mapping[str, Any] | None = None,
    output_facets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An OpenLineage dataset; ``version`` becomes its ``version`` facet.

    Example:
        >>> dataset("file", "/data/a.csv", "ab12")["facets"]["version"]["datasetVersion"]
        'ab12'
    """
    all_facets = dict(facets or {})
    if version is not None:
        all_facets["version"] = _version_facet(version)
    out: dict[str, Any] = {"namespace": namespace, "name": name, "facets": all_facets}
    if output_facets:
        out["outputFacets"] = dict(output_facets)
    return out


def job_namespace(settings: Settings) -> str:
    """The namespace of Plinth's jobs and logical datasets: ``plinth/<project>``."""
    return f"plinth/{settings.project}"


def _location(path: str) -> tuple[str, str]:
    """OpenLineage naming of a stored path: ``s3://bucket`` + key, or ``file`` + path."""
    if "://" in path and not path.startswith("file://"):
        scheme, rest = path.split("://", 1)
        bucket, _, key = rest.partition("/")
        return f"{scheme}://{bucket}", key
    return "file", str(Path(path.removeprefix("file://")).absolute())


def lake_dataset(
    settings: Settings,
    table: str,
    version: int | None = None,
    schema: Iterable[Mapping[str, Any]] | None = None,
    rows: int | None = None,
    size: int | None = None,
) -> dict[str, Any]:
    """A lake table as a dataset: where its Delta folder is, at a version, with its schema.

    Example:
        >>> # lake_dataset(ws.settings, "flights", 3)["facets"]["version"]["datasetVersion"]
    """
    root = settings.storage_root.rstrip("/")
    namespace, name = _location(f"{root}/lake/{table}")
    facets = {
        "plinth": _plinth_facet(table=table, ref=None if version is None else f"{table}@{version}")
    }
    if schema:
        fields = [{"name": str(f.get("name")), "type": str(f.get("type"))} for f in schema]
        schema_url = "1-1-1/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"
        facets["schema"] = facet(schema_url, fields=fields)
    stats = None
    if rows is not None:
        url = "1-0-2/OutputStatisticsOutputDatasetFacet.json"
        url += "#/$defs/OutputStatisticsOutputDatasetFacet"
        stats = {"outputStatistics": facet(url, rowCount=rows, size=size)}
    return dataset(namespace, name, version, facets, stats)


def source_datasets(descriptor: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The datasets an ingest source descriptor names: files (content hash as the version), or
    a SQL query; in-memory data names none.

    Example:
        >>> source_datasets({"kind": "files", "files": [{"path": "/d/a.csv", "sha256": "ab",
        ...                  "bytes": 3}]})[0]["name"]
        '/d/a.csv'
    """
    if descriptor.get("kind") == "files":
        return [
            dataset(
                *_location(str(f["path"])),
                f.get("sha256"),
                {"plinth": _plinth_facet(sha256=f.get("sha256"), bytes=f.get("bytes"))},
            )
            for f in descriptor.get("files", [])
        ]
    if descriptor.get("kind") == "sql":
        digest = descriptor.get("sha256")
        facets = {"plinth": _plinth_facet(query=descriptor.get("query"))}
        return [dataset(str(descriptor.get("url")), f"query/sha256:{digest}", digest, facets)]
    return []


def run_event(
    event_type: str,
    job: str,
    run_id: str,
    namespace: str,
    *,
    inputs: Iterable[dict[str, Any]] = (),
    outputs: Iterable[dict[str, Any]] = (),
    run_facets: Mapping[str, Any] | None = None,
    job_type: str = "JOB",
    event_time: datetime | None = None,
) -> dict[str, Any]:
    """One OpenLineage ``RunEvent`` (``START``, ``COMPLETE``, ``FAIL``, ``ABORT``, ``OTHER``).

    Example:
        >>> run_event("COMPLETE", "train.delay", run_uuid("run", "r1"), "plinth/x")["schemaURL"]
        'https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent'
    """
    when = (event_time or datetime.now(UTC)).astimezone(UTC)
    job_facets = {
        "jobType": facet(
            "2-0-2/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
            processingType="BATCH",
            integration="PLINTH",
            jobType=job_type,
        )
    }
    return {
        "eventType": event_type,
        "eventTime": when.isoformat().replace("+00:00", "Z"),
        "run": {"runId": run_id, "facets": dict(run_facets or {})},
        "job": {"namespace": namespace, "name": job, "facets": job_facets},
        "inputs": list(inputs),
        "outputs": list(outputs),
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
    }


def _error_facet(message: str, trace: str | None = None) -> dict[str, Any]:
    url = "1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
    fields = {"message": message[:2000], "programmingLanguage": "python"}
    return facet(url, **fields, **({"stackTrace": trace[-20000:]} if trace else {}))


def _parent_facet(run_id: str, namespace: str, job: str) -> dict[str, Any]:
    return facet(
        "1-0-1/ParentRunFacet.json#/$defs/ParentRunFacet",
        run={"runId": run_id},
        job={"namespace": namespace, "name": job},
    )


# -- delivery -----------------------------------------------------------------------------


class Emitter:
    """Delivers events to one target: an ``http(s)://`` endpoint, or a JSON-lines file.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "events.jsonl"
        >>> Emitter(str(path)).emit({"eventType": "START"})
        True
        >>> path.read_text()
        '{"eventType":"START"}\\n'
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = url.startswith(("http://", "https://"))
        self.paused_until = 0.0
        self._lock = threading.Lock()

    def emit(self, event: Mapping[str, Any]) -> bool:
        """Deliver one event; return whether it arrived. Never raises: failures are logged."""
        try:
            data = json.dumps(event, separators=(",", ":"), default=str).encode("utf-8")
            return self._post(data) if self.http else self._append(data + b"\n")
        except Exception as exc:  # the work that emits must go on
            log.warning("OpenLineage event not delivered to %s: %s", self._where(), exc)
            return False

    def _where(self) -> str:
        from plinth._core.urls import redact_url

        return redact_url(self.url) if self.http else self.url

    def _post(self, data: bytes) -> bool:
        if time.monotonic() < self.paused_until:
            log.debug("OpenLineage endpoint %s is paused; event dropped.", self._where())
            return False
        request = urllib.request.Request(
            self.url, data=data, method="POST", headers={"Content-Type": "application/json"}
        )
        error: Exception | None = None
        for pause in (0.0, *RETRY_PAUSES_S):
            time.sleep(pause)
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
                    answer.read()
                return True
            except urllib.error.HTTPError as exc:
                error = exc
                if exc.code < 500 and exc.code != 429:
                    break  # the endpoint refuses this event; sending it again will not help
            except (OSError, ValueError) as exc:
                error = exc
        self.paused_until = time.monotonic() + PAUSE_S
        log.warning(
            "OpenLineage events to %s failed (%s); skipping it for %.0f s.",
            self._where(),
            error,
            PAUSE_S,
        )
        return False

    def _append(self, line: bytes) -> bool:
        path = Path(self.url.removeprefix("file://")).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                _lock_file(fd, True)
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                with contextlib.suppress(OSError):
                    _lock_file(fd, False)
                os.close(fd)
        return True


def _lock_file(fd: int, lock: bool) -> None:
    try:
        import fcntl
    except ImportError:  # no advisory locks here: O_APPEND writes of one line stay whole
        return
    fcntl.flock(fd, fcntl.LOCK_EX if lock else fcntl.LOCK_UN)


_emitters: dict[str, Emitter] = {}
_emitters_lock = threading.Lock()


def emit(settings: Settings, event: Mapping[str, Any]) -> bool:
    """Send ``event`` to ``settings.openlineage_url`` (nothing when it is empty).

    Example:
        >>> from plinth._core.settings import Settings
        >>> emit(Settings(home="/tmp/x"), {"eventType": "START"})
        False
    """
    url = settings.openlineage_url.strip()
    if not url:
        return False
    with _emitters_lock:
        emitter = _emitters.get(url) or _emitters.setdefault(url, Emitter(url))
    return emitter.emit(event)


# -- emission points ----------------------------------------------------------------------


def attach(ws: Workspace) -> None:
    """Emit ingest events for every new lake version of ``ws`` (a version listener).

    Example:
        >>> # attach(ws)  # done by Workspace.lake when PLINTH_OPENLINEAGE_URL is set
    """
    ws.lake.version_listeners.append(lambda info: ingest_events(ws, info))


def ingest_events(ws: Workspace, info: VersionInfo) -> None:
    """Emit ``START`` and ``COMPLETE`` for the ingest (or delete) that made ``info``.

    Example:
        >>> # ingest_events(ws, ws.lake.version("flights"))
    """
    try:
        from plinth.catalog.models import Ingest

        settings = ws.settings
        started = info.created_at
        if info.ingest_id:
            with ws.catalog.session() as session:
                row = session.get(Ingest, info.ingest_id)
                started = row.started_at if row is not None else started
        kind = "ingest" if info.operation in ("append", "overwrite", "upsert") else info.operation
        job, namespace = f"{kind}.{info.table}", job_namespace(settings)
        run_id = run_uuid("ingest", info.ingest_id or info.ref)
        facets = {
            "plinth": _plinth_facet(
                ingest_id=info.ingest_id,
                table_version=info.ref,
                operation=info.operation,
                by=info.created_by,
            )
        }
        inputs = source_datasets(info.source)
        output = lake_dataset(
            settings, info.table, info.version, info.schema, info.rows_added, info.bytes
        )
        emit(
            settings,
            run_event(
                "START",
                job,
                run_id,
                namespace,
                inputs=inputs,
                run_facets=facets,
                job_type="INGEST",
                event_time=started,
            ),
        )
        emit(
            settings,
            run_event(
                "COMPLETE",
                job,
                run_id,
                namespace,
                inputs=inputs,
                outputs=[output],
                run_facets=facets,
                job_type="INGEST",
            ),
        )
    except Exception as exc:  # a listener must never fail the ingest it reports
        log.warning("OpenLineage events of %s were not emitted: %s", info.ref, exc)


def training_event(ws: Workspace, run_id: str, status: str = "running") -> None:
    """Emit the event of a training run: ``START`` while ``running``, else its end.

    Inputs are what the run used (``run.use``: training sets, table versions); outputs the
    model versions registered from it. Never raises.

    Example:
        >>> # training_event(ws, run.id, "finished")
    """
    try:
        from sqlalchemy import select

        from plinth.catalog.models import LineageEdge, ModelVersion, Run, RunParam

        settings, namespace = ws.settings, job_namespace(ws.settings)
        inputs, outputs = [], []
        with ws.catalog.session() as s:
            run = s.get(Run, run_id)
            if run is None:
                return
            e = LineageEdge
            for kind, ident in s.execute(
                select(e.source_kind, e.source_id)
                .where(e.target_kind == "run", e.target_id == run_id)
                .order_by(e.id)
            ):
                if kind == "table_version":
                    table, _, version = ident.rpartition("@")
                    inputs.append(lake_dataset(settings, table, int(version)))
                elif kind == "training_set":
                    inputs.append(dataset(namespace, f"training_sets/{ident}"))
            mv = ModelVersion
            for name, version in s.execute(
                select(mv.model_name, mv.version).where(mv.run_id == run_id).order_by(mv.id)
            ):
                outputs.append(dataset(namespace, f"models/{name}", version))
            params = {
                k: v
                for k, v in s.execute(
                    select(RunParam.key, RunParam.value).where(RunParam.run_id == run_id)
                )
            }
            experiment, parent, error = run.experiment, run.parent_id, run.error
            commit = ((run.environment or {}).get("git") or {}).get("commit")
            when = run.started_at if status == "running" else (run.ended_at or None)
        facets: dict[str, Any] = {
            "plinth": _plinth_facet(
                run_id=run_id, experiment=experiment, params=params, code_commit=commit
            )
        }
        if parent:
            facets["parent"] = _parent_facet(
                run_uuid("run", parent), namespace, f"train.{experiment}"
            )
        event_type = "START" if status == "running" else _END.get(status, "OTHER")
        if event_type == "FAIL":
            facets["errorMessage"] = _error_facet(error or "The run failed.")
        event = run_event(
            event_type,
            f"train.{experiment}",
            run_uuid("run", run_id),
            namespace,
            inputs=inputs,
            outputs=outputs if status != "running" else (),
            run_facets=facets,
            job_type="TRAINING",
            event_time=when,
        )
        emit(settings, event)
    except Exception as exc:
        log.warning("OpenLineage event of run %s was not emitted: %s", run_id, exc)


class PipelineEvents:
    """Events of one pipeline run and its steps, fed by the runner's progress events.

    Example:
        >>> # events = PipelineEvents(ws, "pr_01...", "flights", {"lr": 0.1})
        >>> # events.on("started", state)
    """

    def __init__(self, ws: Workspace, run_id: str, pipeline: str, params: Any = None) -> None:
        self.settings = ws.settings
        self.namespace = job_namespace(ws.settings)
        self.run_id, self.pipeline, self.params = run_id, pipeline, params
        self.job = f"pipeline.{pipeline}"
        self.uuid = run_uuid("pipeline_run", run_id)

    def on(self, kind: str, state: Any = None, message: str | None = None) -> None:
        """Emit what the runner event ``kind`` means for OpenLineage; never raises.

        ``state`` is the step's state (``name``, ``attempts``, ``tables``, ``inputs``,
        ``outputs``, ``error``, ``cached_from``), ``None`` for events of the whole run.
        """
        try:
            if state is None:
                self._run(kind, message)
            elif kind == "started" and state.attempts <= 1:
                self._step("START", state)
            elif kind == "cached":
                self._step("START", state)
                self._step("COMPLETE", state)
            elif kind in ("succeeded", "failed"):
                self._step("COMPLETE" if kind == "succeeded" else "FAIL", state)
        except Exception as exc:
            log.warning(
                "OpenLineage event of pipeline run %s was not emitted: %s", self.run_id, exc
            )

    def _run(self, kind: str, message: str | None) -> None:
        if kind not in ("run_started", "run_finished", "run_aborted"):
            return
        facets: dict[str, Any] = {
            "plinth": _plinth_facet(pipeline_run_id=self.run_id, params=self.params)
        }
        event_type = "START"
        if kind != "run_started":
            event_type = "COMPLETE" if message == "succeeded" else "FAIL"
        if event_type == "FAIL":
            facets["errorMessage"] = _error_facet(message or "The pipeline run failed.")
        emit(
            self.settings,
            run_event(
                event_type, self.job, self.uuid, self.namespace, run_facets=facets, job_type="DAG"
            ),
        )

    def _step(self, event_type: str, state: Any) -> None:
        inputs = [lake_dataset(self.settings, t, int(v)) for t, v in state.tables.items()]
        inputs += [self._artifact(d, ref) for ref, d in state.inputs.items()]
        outputs = [self._artifact(d, name) for name, d in (state.outputs or {}).items()]
        facets = {
            "parent": _parent_facet(self.uuid, self.namespace, self.job),
            "plinth": _plinth_facet(
                step_run=f"{self.run_id}/{state.name}",
                attempts=state.attempts,
                cached_from=state.cached_from,
            ),
        }
        if event_type == "FAIL":
            error = state.error or "The step failed."
            lines = [line for line in error.strip().splitlines() if line.strip()]
            facets["errorMessage"] = _error_facet(lines[-1] if lines else error, error)
        uuid_ = run_uuid("step_run", f"{self.run_id}/{state.name}")
        event = run_event(
            event_type,
            f"{self.pipeline}.{state.name}",
            uuid_,
            self.namespace,
            inputs=inputs,
            outputs=outputs if event_type != "START" else (),
            run_facets=facets,
            job_type="TASK",
        )
        emit(self.settings, event)

    def _artifact(self, digest: str, name: str) -> dict[str, Any]:
        facets = {"plinth": _plinth_facet(name=name)}
        return dataset(self.namespace, f"artifacts/sha256:{digest}", digest, facets)
