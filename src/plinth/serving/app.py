"""The inference API: a FastAPI app over a :class:`~plinth.serving.state.ServingState`.

Endpoints: ``POST /v1/models/{name}/predict`` (JSON records or columns; entity keys suffice
when the model has a feature service), the Open Inference Protocol v2 REST API under ``/v2``,
``GET /v1/models`` (what is served and how traffic is split) and ``GET /metrics``
(Prometheus). Errors are JSON with a 4xx status: 413 for a body over the limit (before it is
read), 422 naming the field for bad input, 404 for an unknown model or version, 503 with
Retry-After while loading or when overloaded. With ``PLINTH_AUTH`` on, every path but the
health probes and the docs needs a bearer token whose role grants ``predictions:read``
(``/metrics``: ``monitoring:read``): 401 with ``WWW-Authenticate`` without one, 403 for a
role without the permission, 429 with Retry-After over the rate limit (docs/security.md).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import uuid
from datetime import datetime
from time import perf_counter
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response

from plinth._core.clock import utcnow
from plinth.errors import PlinthError, SchemaMismatchError
from plinth.serving import oip
from plinth.serving.batcher import Job, Overloaded
from plinth.serving.inputs import Columns, columns_from_json
from plinth.serving.prediction_log import LogEntry
from plinth.serving.state import ServingState

if TYPE_CHECKING:
    from plinth.serving.routing import RouteEntry
    from plinth.serving.served import Answer, ServedVersion

log = logging.getLogger(__name__)
SERVER_NAME = "plinth"
_ID_PREFIX = f"{uuid.uuid4().hex[:12]}{os.getpid():x}-"
_ID_COUNTER = itertools.count(1)
#: Paths anyone may call when authentication is on: the probes, and the API's own docs
#: (they describe the protocol, not what is served). Every other path needs predictions:read
#: (/metrics: monitoring:read).
OPEN_PATHS = frozenset(
    {
        "/v2/health/live",
        "/v2/health/ready",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
    }
)


def new_request_id() -> str:
    """A request id unique across processes and restarts: a random per-process prefix and a
    counter (uuid4 per request costs a system call).

    Example:
        >>> new_request_id() != new_request_id()
        True
    """
    return f"{_ID_PREFIX}{next(_ID_COUNTER)}"


class BodyTooLarge(PlinthError):
    """The request body is larger than the server accepts."""

    status_code = 413


class NotReady(PlinthError):
    """The server is still loading its models."""

    status_code = 503


def _dumps(value: Any) -> bytes:
    import orjson

    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_dumps(value), status, headers, media_type="application/json")


def _error(exc: PlinthError, *, oip_style: bool = False) -> Response:
    headers = dict(getattr(exc, "headers", None) or {})
    retry = getattr(exc, "retry_after", None)
    if retry is not None:
        headers["Retry-After"] = str(retry)
    if oip_style:
        return _json({"error": str(exc)}, exc.status_code, headers)
    body = {"error": {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint}}
    return _json(body, exc.status_code, headers)


def _header(request: Request, name: bytes) -> str | None:
    return _scope_header(request.scope, name)


def _scope_header(scope: dict[str, Any], name: bytes) -> str | None:
    # The raw header list: Starlette's Headers mapping costs more than the lookup here.
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def _read_body(request: Request, limit: int) -> bytes:
    length = _header(request, b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise BodyTooLarge(
            f"The request body has {int(length):,} bytes; the limit is {limit:,}.",
            hint="Split the rows over several requests, or raise --max-body-bytes.",
        )
    if length is not None:
        return await request.body()
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(
                f"The request body is over the limit of {limit:,} bytes.",
                hint="Split the rows over several requests, or raise --max-body-bytes.",
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_json(raw: bytes | memoryview) -> Any:
    import orjson

    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SchemaMismatchError(
            f"The request body is not valid JSON: {exc}.", hint="Send a JSON object."
        ) from exc


def _json_length(header: str, size: int) -> int:
    """The JSON part's length from the OIP binary header: digits, at most the body's size."""
    if not (header.isascii() and header.isdigit()) or int(header) > size:
        raise SchemaMismatchError(
            f"Header {oip.HEADER} is {header[:40]!r}, not a length within the body's "
            f"{size:,} bytes.",
            hint="Send the byte length of the JSON part of the request.",
        )
    return int(header)


def _as_of(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise SchemaMismatchError(
            f"Field 'as_of' is not an ISO 8601 time: {value!r}.",
            hint="Send e.g. 2013-07-01T08:00:00Z, or leave it out to mean now.",
        ) from exc
    if moment.tzinfo is None:
        raise SchemaMismatchError(
            "Field 'as_of' has no time zone.", hint="Add Z or an offset such as +00:00."
        )
    return moment


class InferenceAPI:
    """The request handling shared by the v1 and OIP endpoints.

    Example:
        >>> # api = InferenceAPI(state); app = api.app()
    """

    def __init__(self, state: ServingState) -> None:
        self.state = state
        self.metrics = state.metrics
        self._background: set[asyncio.Task[Any]] = set()

    async def answer(
        self,
        model: str,
        version: int | None,
        columns: Columns,
        n: int,
        *,
        as_of: datetime | None,
        request_id: str,
        begin: float,
    ) -> tuple[ServedVersion, str, Answer]:
        """Route, check, batch and predict one request; log it and feed the shadow."""
        state = self.state
        if not state.ready:
            raise NotReady(
                "The server is still loading its models.", hint="Wait for /v2/health/ready."
            )
        table = state.table(model)
        if version is None:
            entry: RouteEntry = table.choose()
            served, route = entry.served, entry.label
        else:
            served = state.version(model, version)
            route = "direct"
        served.check(columns)
        result: Answer = await served.predict(Job(columns, n, as_of))
        latency = perf_counter() - begin
        self._log(served, route, result, columns, n, as_of, request_id, latency)
        if version is None and table.shadow is not None and table.shadow is not served:
            task = asyncio.get_running_loop().create_task(
                self._shadow(table.shadow, columns, n, as_of, request_id)
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return served, route, result

    def _log(
        self,
        served: ServedVersion,
        route: str,
        result: Answer,
        columns: Columns,
        n: int,
        as_of: datetime | None,
        request_id: str,
        latency: float,
    ) -> None:
        plog = self.state.plog
        if plog is None:
            return
        inputs = dict(result.inputs)
        for key in served.schema.keys:
            if key not in inputs and key in columns:
                inputs[key] = columns[key]
        queued = plog.put(
            LogEntry(
                request_id,
                served.name,
                served.version,
                route,
                utcnow(),
                as_of,
                latency * 1000.0,
                inputs,
                served.schema.kinds,
                result.predictions,
                n,
            )
        )
        self.metrics.logged("queued" if queued else "dropped", n)

    async def _shadow(
        self,
        served: ServedVersion,
        columns: Columns,
        n: int,
        as_of: datetime | None,
        request_id: str,
    ) -> None:
        begin = perf_counter()
        try:
            served.check(columns)
            result = await served.predict(Job(columns, n, as_of))
        except PlinthError as exc:
            self.metrics.request(served.name, served.version, "shadow", exc.status_code, 0.0)
            return
        latency = perf_counter() - begin
        self.metrics.request(served.name, served.version, "shadow", 200, latency)
        self._log(served, "shadow", result, columns, n, as_of, request_id, latency)

    # -- endpoints ---------------------------------------------------------------------------

    async def predict_v1(self, request: Request, name: str, version: int | None) -> Response:
        """``POST /v1/models/{name}[/versions/{v}]/predict``."""
        begin = request.scope.get("plinth.t0", perf_counter())
        request_id = _header(request, b"x-request-id") or new_request_id()
        served_version: Any = version if version is not None else "-"
        route = "-"
        try:
            body = _parse_json(await _read_body(request, self.state.options.max_body_bytes))
            as_of = _as_of(body.pop("as_of", None)) if isinstance(body, dict) else None
            columns, n = columns_from_json(body)
            served, route, result = await self.answer(
                name, version, columns, n, as_of=as_of, request_id=request_id, begin=begin
            )
        except PlinthError as exc:
            self._rejected(name, served_version, route, exc, begin)
            return _error(exc)
        total = perf_counter() - begin
        self.metrics.request(name, served.version, route, 200, total)
        payload = {
            "model": name,
            "version": served.version,
            "route": route,
            "request_id": request_id,
            "predictions": result.predictions,
        }
        return _json(payload, headers=self._headers(request_id, total, result))

    async def infer_v2(self, request: Request, name: str, version: int | None) -> Response:
        """``POST /v2/models/{name}[/versions/{v}]/infer`` (OIP, JSON or binary tensors)."""
        begin = request.scope.get("plinth.t0", perf_counter())
        served_version: Any = version if version is not None else "-"
        route = "-"
        request_id = _header(request, b"x-request-id") or new_request_id()
        try:
            raw = await _read_body(request, self.state.options.max_body_bytes)
            header = _header(request, oip.HEADER.encode())
            if header is not None:
                split = _json_length(header, len(raw))
                body = _parse_json(memoryview(raw)[:split])
                binary: memoryview | None = memoryview(raw)[split:]
            else:
                body = _parse_json(raw)
                binary = None
            if not isinstance(body, dict):
                raise SchemaMismatchError("The request body is not a JSON object.")
            request_id = str(body.get("id") or request_id)
            table = self.state.table(name) if self.state.ready else None
            target = (
                table.entries[0].served
                if table is not None and version is None
                else (self.state.version(name, version) if table is not None else None)
            )
            names = target.input_names if target is not None else None
            accepted = target.schema.allowed if target is not None else set()
            columns, n = oip.decode_request(body, binary, names, accepted)
            as_of = _as_of((body.get("parameters") or {}).get("as_of"))
            served, route, result = await self.answer(
                name, version, columns, n, as_of=as_of, request_id=request_id, begin=begin
            )
        except PlinthError as exc:
            self._rejected(name, served_version, route, exc, begin)
            return _error(exc, oip_style=True)
        outputs, data = oip.encode_outputs(result.predictions, body.get("outputs"))
        total = perf_counter() - begin
        self.metrics.request(name, served.version, route, 200, total)
        response = {
            "model_name": name,
            "model_version": str(served.version),
            "id": request_id,
            "outputs": outputs,
        }
        headers = self._headers(request_id, total, result)
        if not data:
            return _json(response, headers=headers)
        head = _dumps(response)
        headers["Inference-Header-Content-Length"] = str(len(head))
        return Response(head + data, 200, headers, media_type="application/octet-stream")

    def _rejected(
        self, name: str, version: Any, route: str, exc: PlinthError, begin: float
    ) -> None:
        reason = {
            413: "too_large",
            422: "invalid",
            404: "not_found",
            503: "overloaded" if isinstance(exc, Overloaded) else "not_ready",
        }.get(exc.status_code, "error")
        # Names of models not served come from the URL: one label for all of them, so callers
        # cannot grow the number of metric series without bound.
        if name not in self.state.tables:
            name, version = "(unknown)", "-"
        self.metrics.reject(name, reason)
        self.metrics.request(name, version, route, exc.status_code, perf_counter() - begin)

    @staticmethod
    def _headers(request_id: str, total: float, result: Answer) -> dict[str, str]:
        return {
            "X-Request-ID": request_id,
            "Server-Timing": f"app;dur={total * 1000:.3f}, "
            f"predict;dur={result.predict_s * 1000:.3f}, "
            f"features;dur={result.lookup_s * 1000:.3f}",
        }

    # -- metadata ----------------------------------------------------------------------------

    def model_metadata(self, name: str, version: int | None) -> dict[str, Any]:
        """OIP model metadata: name, versions, platform, inputs and outputs."""
        table = self.state.table(name)
        served = table.entries[0].served if version is None else self.state.version(name, version)
        inputs: list[dict[str, Any]]
        if served.input_names is None:
            spec = served.model.signature.inputs if served.model.signature else None
            shape = list(getattr(spec, "shape", [-1]))
            inputs = [{"name": "inputs", "datatype": "FP32", "shape": shape}]
        else:
            kinds = {**served.schema.key_kinds, **served.schema.kinds}
            sent = [*served.schema.required, *served.schema.key_only]
            inputs = [
                {"name": c, "datatype": oip.kind_datatype(kinds.get(c, "string")), "shape": [-1]}
                for c in sent
            ]
        return {
            "name": name,
            "versions": [str(v) for v in sorted(table.versions())],
            "platform": f"plinth_{served.model.flavor}",
            "inputs": inputs,
            "outputs": [{"name": "prediction", "datatype": "FP64", "shape": [-1]}],
        }

    def served(self) -> list[dict[str, Any]]:
        """What the server serves: each model's routes, shadow and readiness."""
        out = []
        for target in self.state.targets:
            table = self.state.tables.get(target.model)
            out.append(
                {
                    "model": target.model,
                    "uri": target.uri,
                    "ready": table is not None,
                    "revision": table.revision if table else None,
                    "routes": [
                        {
                            "uri": e.uri,
                            "version": e.served.version,
                            "weight": e.weight,
                            "label": e.label,
                            "path": e.served.predictor.path,
                            "batching": e.served.batcher.max_rows > 1,
                        }
                        for e in (table.entries if table else [])
                    ],
                    "shadow": (
                        {"uri": table.shadow_uri, "version": table.shadow.version}
                        if table and table.shadow
                        else None
                    ),
                }
            )
        return out


def create_app(state: ServingState) -> FastAPI:
    """The FastAPI app serving ``state``'s models; starts loading them on startup.

    Example:
        >>> # app = create_app(ServingState(ws, targets_of(["delay@champion"]), ServeOptions()))
    """
    from contextlib import asynccontextmanager

    api = InferenceAPI(state)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    app = FastAPI(
        title="Plinth inference API",
        version="1",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.serving = state
    app.state.api = api

    @app.exception_handler(PlinthError)
    async def plinth_error(request: Request, exc: PlinthError) -> Response:
        return _error(exc, oip_style=request.url.path.startswith("/v2"))

    @app.post("/v1/models/{name}/predict")
    async def predict(request: Request, name: str) -> Response:
        return await api.predict_v1(request, name, None)

    @app.post("/v1/models/{name}/versions/{version}/predict")
    async def predict_version(request: Request, name: str, version: int) -> Response:
        return await api.predict_v1(request, name, version)

    @app.get("/v1/models")
    async def models() -> Response:
        return _json({"models": api.served(), "ready": state.ready, "error": state.load_error})

    @app.get("/v2")
    async def server_metadata() -> Response:
        from plinth import __version__

        return _json({"name": SERVER_NAME, "version": __version__, "extensions": ["binary_data"]})

    @app.get("/v2/health/live")
    async def live() -> Response:
        return _json({"live": True})

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        body = {"ready": state.ready}
        if state.load_error:
            body["error"] = state.load_error
        return _json(body, 200 if state.ready else 503)

    @app.get("/v2/models/{name}")
    async def model_metadata(name: str) -> Response:
        return _json(api.model_metadata(name, None))

    @app.get("/v2/models/{name}/versions/{version}")
    async def version_metadata(name: str, version: int) -> Response:
        return _json(api.model_metadata(name, version))

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str) -> Response:
        ok = state.ready and name in state.tables
        return _json({"name": name, "ready": ok}, 200 if ok else 503)

    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def version_ready(name: str, version: int) -> Response:
        ok = name in state.tables and version in state.tables[name].versions()
        return _json({"name": name, "version": str(version), "ready": ok}, 200 if ok else 503)

    @app.post("/v2/models/{name}/infer")
    async def infer(request: Request, name: str) -> Response:
        return await api.infer_v2(request, name, None)

    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer_version(request: Request, name: str, version: int) -> Response:
        return await api.infer_v2(request, name, version)

    @app.get("/metrics")
    async def metrics() -> Response:
        for model, table in state.tables.items():
            for served in table.versions().values():
                state.metrics.queued(model, served.version, served.batcher.queued_rows)
        body, content_type = state.metrics.render()
        return Response(body, 200, media_type=content_type)

    app.add_middleware(_FastPaths, api=api)
    return app


class _FastPaths:
    """Pure ASGI middleware: notes when a request entered the app (for Server-Timing), checks
    the caller when authentication or a rate limit is on (every path but the health probes
    and the API docs: 401, 429, then 403), and hands the two prediction routes straight to
    their handlers.

    The routes are declared on the FastAPI app as well (OpenAPI, docs); taking them here
    skips a dozen routing and dependency layers that cost more than the prediction of a
    small model.
    """

    def __init__(self, app: Any, api: InferenceAPI) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope["plinth.t0"] = perf_counter()
        access = self.api.state.access
        if access is not None and scope["path"] not in OPEN_PATHS:
            try:
                await access.guard(
                    _scope_header(scope, b"authorization"),
                    "monitoring:read" if scope["path"] == "/metrics" else "predictions:read",
                    (scope.get("client") or ("-",))[0],
                )
            except PlinthError as exc:
                await _error(exc, oip_style=scope["path"].startswith("/v2"))(scope, receive, send)
                return
        if scope["method"] == "POST":
            routed = _route(scope["path"])
            if routed is not None:
                kind, name, version = routed
                request = Request(scope, receive)
                handler = self.api.predict_v1 if kind == "predict" else self.api.infer_v2
                inflight = self.api.state.inflight
                gauge = self.api.metrics.inflight
                inflight.value += 1
                gauge.inc()
                try:
                    response = await handler(request, name, version)
                except Exception as exc:  # a model that raises must still answer in JSON
                    log.exception("prediction failed")
                    response = _json(
                        {"error": {"type": type(exc).__name__, "message": str(exc)}}, 500
                    )
                finally:
                    inflight.value -= 1
                    gauge.dec()
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _route(path: str) -> tuple[str, str, int | None] | None:
    parts = path.split("/")
    # ['', 'v1', 'models', NAME, 'predict'] or [..., NAME, 'versions', V, 'predict']
    if len(parts) not in (5, 7) or parts[2] != "models":
        return None
    kind = parts[-1]
    if (parts[1], kind) not in (("v1", "predict"), ("v2", "infer")):
        return None
    if len(parts) == 5:
        return kind, parts[3], None
    if parts[4] != "versions" or not parts[5].isdigit():
        return None
    return kind, parts[3], int(parts[5])
