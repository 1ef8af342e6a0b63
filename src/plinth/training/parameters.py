"""Training parameters: ``--param k=v`` on the command line, a tuning trial's sampled values.

The launcher hands the values to the script as JSON in ``PLINTH_PARAMS``; the script declares
its parameters with their defaults and reads the overrides with :func:`params`, so the same
script runs unchanged by hand, under ``plinth train`` and as a trial of ``plinth tune``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from plinth.errors import ConfigError

PARAMS_ENV = "PLINTH_PARAMS"
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_value(text: str) -> Any:
    """Read one ``--param`` value: a JSON number, boolean, null, list or object, else text.

    Example:
        >>> parse_value("0.1"), parse_value("true"), parse_value("adam")
        (0.1, True, 'adam')
    """
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """Turn ``["lr=0.1", "opt=adam"]`` into ``{"lr": 0.1, "opt": "adam"}``.

    Example:
        >>> parse_assignments(["lr=1e-3", "depth=4"])
        {'lr': 0.001, 'depth': 4}
    """
    values: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not _KEY.match(key):
            raise ConfigError(
                f"'{item}' is not a parameter assignment.",
                hint="Write --param NAME=VALUE, e.g. --param lr=0.01 (names are letters, "
                "digits, '_', '.' and '-').",
            )
        values[key] = parse_value(text)
    return values


def encode(values: Mapping[str, Any]) -> str:
    """The ``PLINTH_PARAMS`` text for a mapping of parameter values.

    Example:
        >>> encode({"lr": 0.1})
        '{"lr": 0.1}'
    """
    return json.dumps(dict(values), sort_keys=True)


def overrides() -> dict[str, Any]:
    """The parameter values the launcher passed to this process (empty when none).

    Example:
        >>> isinstance(overrides(), dict)
        True
    """
    text = os.environ.get(PARAMS_ENV, "").strip()
    if not text:
        return {}
    try:
        values = json.loads(text)
    except ValueError as exc:
        raise ConfigError(
            f"{PARAMS_ENV} does not hold JSON: {exc}.",
            hint="Pass parameters with 'plinth train --param k=v', or unset PLINTH_PARAMS.",
        ) from exc
    if not isinstance(values, dict):
        raise ConfigError(
            f"{PARAMS_ENV} must hold a JSON object of parameter values.",
            hint='Write it like {"lr": 0.01, "epochs": 3}.',
        )
    return values


def _coerce(key: str, default: Any, value: Any) -> Any:
    """``value`` in the type of ``default``; a clear error when it cannot be."""

    def fail(kind: str) -> ConfigError:
        return ConfigError(
            f"Parameter '{key}' must be {kind}, not {value!r}.",
            hint=f"Its default is {default!r}; pass a value of the same kind.",
        )

    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise fail("a boolean (true or false)")
    if isinstance(default, int):
        if isinstance(value, bool):
            raise fail("an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise fail("an integer") from None
        raise fail("an integer")
    if isinstance(default, float):
        if isinstance(value, bool):
            raise fail("a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise fail("a number") from None
    if isinstance(default, str):
        if isinstance(value, dict | list):
            raise fail("a text")
        return value if isinstance(value, str) else json.dumps(value)
    if isinstance(default, list | tuple):
        if not isinstance(value, list):
            raise fail("a list")
        return type(default)(value)
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise fail("a mapping")
        return value
    return value


def params(defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``defaults`` overridden by the values the launcher passed (``--param``, a trial).

    Each value is converted to the type of its default (``"3"`` for an ``int`` default
    becomes ``3``); a name that is not among the defaults is an error, so a typo in
    ``--param`` is not silently ignored.

    Example:
        >>> params({"lr": 0.1, "epochs": 3})   # no PLINTH_PARAMS: the defaults
        {'lr': 0.1, 'epochs': 3}
    """
    merged = dict(defaults)
    given = overrides()
    unknown = sorted(set(given) - set(merged))
    if unknown:
        raise ConfigError(
            f"Unknown parameter(s) {', '.join(repr(k) for k in unknown)}: the script declares "
            f"{', '.join(sorted(merged)) or 'none'}.",
            hint="Check the names given with --param or in the search space.",
        )
    for key, value in given.items():
        merged[key] = _coerce(key, merged[key], value)
    return merged
