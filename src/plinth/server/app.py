"""The control plane: a FastAPI app with the REST API over the catalog and the dashboard.

Routes live under ``/api/v1`` (one router per area in :mod:`plinth.server.api`); the spec is
at ``/openapi.json`` and the docs at ``/docs``. Every API route but ``/api/v1/health``
declares the permission it needs (:func:`plinth.server.auth.require`). Errors are JSON
``{"error": {"type", "message", "hint"}}`` with a 4xx status (503 when the catalog cannot
check a credential); a malformed request answers 422 naming the field.

Example:
    >>> # app = create_app(ws); uvicorn.run(app)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

import plinth
from plinth.errors import PlinthError
from plinth.governance.access import Access

if TYPE_CHECKING:
    from plinth._core.settings import Settings
    from plinth.workspace import Workspace

__all__ = ["API_PREFIX", "JSONAnswer", "RouteInfo", "create_app", "error_body", "route_table"]

log = logging.getLogger(__name__)
API_PREFIX = "/api/v1"
_STATUS_TYPES = {
    400: "BadRequest",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    415: "UnsupportedMediaType",
}


class JSONAnswer(Response):
    """A JSON response written with orjson: NaN and infinities become null, times ISO 8601."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """The body of ``content``.

        Example:
            >>> JSONAnswer({"x": float("nan")}).body
            b'{"x":null}'
        """
        import orjson

        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def error_body(kind: str, message: str, hint: str | None = None) -> dict[str, Any]:
    """The JSON body of an error answer.

    Example:
        >>> error_body("NotFoundError", "No such run.")["error"]["type"]
        'NotFoundError'
    """
    return {"error": {"type": kind, "message": message, "hint": hint}}


def _plinth_error(_: Request, exc: Exception) -> JSONAnswer:
    assert isinstance(exc, PlinthError)
    headers = dict(getattr(exc, "headers", None) or {})
    retry = getattr(exc, "retry_after", None)
    if retry is not None:
        headers["Retry-After"] = str(retry)
    body = error_body(type(exc).__name__, exc.message, exc.hint)
    return JSONAnswer(body, exc.status_code, headers)


def _validation_error(_: Request, exc: Exception) -> JSONAnswer:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors()[:10]:
        where = ".".join(str(part) for part in error.get("loc", ()))
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    message = "The request does not fit the API: " + "; ".join(problems) + "."
    body = error_body("ValidationError", message, "See /docs for the expected parameters.")
    body["error"]["details"] = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
        for e in exc.errors()[:50]
    ]
    return JSONAnswer(body, 422)


def _http_error(_: Request, exc: Exception) -> JSONAnswer:
    assert isinstance(exc, StarletteHTTPException)
    kind = _STATUS_TYPES.get(exc.status_code, "HTTPError")
    message = str(exc.detail) if exc.detail else kind
    if not message.endswith("."):
        message += "."
    return JSONAnswer(error_body(kind, message), exc.status_code, exc.headers)


@dataclass(frozen=True)
class RouteInfo:
    """One HTTP route of the app: its path, methods and the permission it checks (``None``
    when it declares none, ``any`` for every authenticated caller)."""

    path: str
    methods: frozenset[str]
    permission: str | None
    endpoint: Any


def _permissions(dependencies: list[Any]) -> list[str]:
    from plinth.server.auth import permission_of

    found = []
    for dependency in dependencies:
        permission = permission_of(getattr(dependency, "dependency", None) or dependency)
        if permission is not None:
            found.append(permission)
    return found


def _walk(routes: list[Any], prefix: str, inherited: list[Any]) -> list[RouteInfo]:
    from fastapi.routing import APIRoute
    from starlette.routing import Route

    out: list[RouteInfo] = []
    for route in routes:
        context = getattr(route, "include_context", None)
        if context is not None:  # an included router
            dependencies = [*inherited, *context.dependencies]
            out.extend(_walk(route.original_router.routes, context.prefix, dependencies))
        elif isinstance(route, APIRoute):
            calls = [d.call for d in route.dependant.dependencies]
            found = _permissions([*inherited, *route.dependencies, *calls])
            methods = frozenset(route.methods or ())
            out.append(RouteInfo(prefix + route.path, methods, found[0] if found else None,
                                 route.endpoint))  # fmt: skip
        elif isinstance(route, Route):
            methods = frozenset(route.methods or ())
            out.append(RouteInfo(prefix + route.path, methods, None, route.endpoint))
    return out


def route_table(app: Any) -> list[RouteInfo]:
    """Every HTTP route of ``app``, included routers flattened, with its permission.

    Example:
        >>> # [r.path for r in route_table(create_app(ws)) if r.permission is None]
    """
    return _walk(list(app.router.routes), "", [])


def create_app(ws: Workspace, *, settings: Settings | None = None) -> Any:
    """The control-plane FastAPI app over ``ws``'s catalog (``settings`` default to the
    workspace's); raises :class:`~plinth.errors.ConfigError` when authentication is off
    with a shared catalog.

    Example:
        >>> # transport = httpx.ASGITransport(create_app(ws))
    """
    from plinth.server import dashboard
    from plinth.server.api import ROUTERS

    settings = settings or ws.settings
    access = Access.of(ws)
    app = FastAPI(
        title="Plinth control plane",
        version=plinth.__version__,
        description="REST API over the Plinth catalog: tables, features, runs, models, "
        "pipelines, deployments, monitoring, lineage, audit and cost. Send "
        "'Authorization: Bearer plt_...' when authentication is on.",
        default_response_class=JSONAnswer,
    )
    app.state.ws = ws
    app.state.settings = settings
    app.state.access = access
    app.add_exception_handler(PlinthError, _plinth_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for router in ROUTERS:
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(dashboard.router)
    return app
