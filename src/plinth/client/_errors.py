"""Error answers of the control-plane API as the PlinthError classes a local call raises."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plinth.errors import ConfigError, PlinthError

if TYPE_CHECKING:
    import httpx

__all__ = ["ServerUnavailableError", "error_class", "raise_for"]


class ServerUnavailableError(PlinthError):
    """The control-plane server cannot be reached, or keeps answering 503."""

    status_code = 503


def _known_errors() -> dict[str, type[PlinthError]]:
    import plinth.errors as errors
    from plinth.governance.access import AccessUnavailable, Forbidden, Unauthenticated
    from plinth.governance.ratelimit import RateLimited
    from plinth.monitoring.alerts import AlertNotFoundError
    from plinth.serving.deployments import DeploymentNotFoundError

    found: dict[str, type[PlinthError]] = {name: getattr(errors, name) for name in errors.__all__}
    for cls in (
        AccessUnavailable,
        Forbidden,
        Unauthenticated,
        RateLimited,
        AlertNotFoundError,
        DeploymentNotFoundError,
        ServerUnavailableError,
    ):
        found[cls.__name__] = cls
    return found


def error_class(type_name: str | None, status: int) -> type[PlinthError]:
    """The error class for an API error: by its ``type`` name, else by the HTTP status.

    Example:
        >>> error_class("ModelNotFoundError", 404).__name__
        'ModelNotFoundError'
        >>> error_class(None, 403).__name__
        'Forbidden'
    """
    from plinth.errors import ConflictError, NotFoundError
    from plinth.governance.access import Forbidden, Unauthenticated
    from plinth.governance.ratelimit import RateLimited

    known = _known_errors()
    name = (type_name or "").rsplit(".", 1)[-1]
    if name in known:
        return known[name]
    by_status: dict[int, type[PlinthError]] = {
        401: Unauthenticated,
        403: Forbidden,
        404: NotFoundError,
        409: ConflictError,
        422: ConfigError,
        429: RateLimited,
        503: ServerUnavailableError,
    }
    return by_status.get(status, PlinthError)


def raise_for(response: httpx.Response) -> None:
    """Raise the :class:`PlinthError` an error answer stands for; pass a success.

    Example:
        >>> # raise_for(client.get("/api/v1/models/nope"))  # ModelNotFoundError
    """
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        cls = error_class(error.get("type"), response.status_code)
        message = str(error.get("message") or f"The server answered {response.status_code}.")
        raise cls(message, hint=error.get("hint"))
    if isinstance(body, dict) and isinstance(body.get("detail"), list):  # request validation
        problems = "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}"
            for d in body["detail"]
            if isinstance(d, dict)
        )
        raise ConfigError(f"The server refused the request: {problems}.")
    cls = error_class(None, response.status_code)
    text = response.text.strip()[:200] or response.reason_phrase
    raise cls(
        f"The server answered {response.status_code} to {response.request.method} "
        f"{response.request.url.path}: {text}",
        hint="Check PLINTH_URL points at a Plinth server of this version.",
    )
