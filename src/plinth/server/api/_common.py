"""Helpers the API routers share: the workspace of a request and JSON-ready values."""

from __future__ import annotations

import math
from dataclasses import asdict, is_dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import Request

if TYPE_CHECKING:
    from plinth.workspace import Workspace

__all__ = ["NAME", "json_ready", "workspace"]

#: Path parameters naming a catalog object: no control characters, bounded length.
NAME = r"^[^\x00-\x1f\x7f]{1,256}$"


def workspace(request: Request) -> Workspace:
    """The workspace the app serves.

    Example:
        >>> # ws = workspace(request)
    """
    return request.app.state.ws


def json_ready(value: Any) -> Any:
    """``value`` as plain JSON data: dataclasses as dicts, times as ISO 8601, NaN and
    infinities as None.

    Example:
        >>> json_ready({"a": float("nan"), "b": [1.5]})
        {'a': None, 'b': [1.5]}
    """
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


def binary_body(description: str) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of an upload route, which reads the raw request bytes.

    Example:
        >>> binary_body("The file's bytes.")["requestBody"]["required"]
        True
    """
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": binary},
            "description": description,
        }
    }
