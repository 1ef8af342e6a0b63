"""Cache keys: a step's code (with the user code it calls), parameters, inputs and tables.

The code hash covers the step function's source and, recursively, the source of the
user-defined functions and classes it references through globals, closures and module
attributes, plus the values of simple constants it reads (``THRESHOLD = 0.5``). Code from the
standard library, site-packages and Plinth itself is left out: library upgrades do not
invalidate caches. Sources are compared as syntax trees, so comments, blank lines and the
step's decorator options (retries, resources) do not change the key.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import math
import os
import site
import sys
import sysconfig
import textwrap
import types
from collections.abc import Mapping
from datetime import date, datetime
from functools import lru_cache
from pathlib import PurePath
from typing import Any

__all__ = ["CACHE_FORMAT", "cache_key", "canonical_json", "code_hash", "is_user_module"]

#: Bumped when the way keys are computed changes, so old cache entries stop matching.
CACHE_FORMAT = 1
#: Constants larger than this (as JSON) are not folded into the code hash.
MAX_CONSTANT_BYTES = 64 * 1024


def _default(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if hasattr(value, "item") and hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0:
        return value.item()  # numpy scalars
    raise TypeError(f"{type(value).__name__} is not JSON-like")


def canonical_json(value: Any) -> str:
    """Return ``value`` as canonical JSON (sorted keys, no spaces); raises TypeError if it
    cannot be (floats NaN and infinities are rejected too).

    Example:
        >>> canonical_json({"b": 1, "a": [1.5, None]})
        '{"a":[1.5,null],"b":1}'
    """
    _check_floats(value)
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), default=_default, allow_nan=False
    )


def _check_floats(value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise TypeError(f"{value} is not a finite number")
    if isinstance(value, list | tuple):
        for v in value:
            _check_floats(v)
    elif isinstance(value, dict):
        for v in value.values():
            _check_floats(v)


def json_ready(value: Any) -> Any:
    """``value`` made storable as JSON: anything not JSON-like becomes its ``repr``.

    Example:
        >>> json_ready({"f": object}) == {"f": repr(object)}
        True
    """
    try:
        return json.loads(canonical_json(value))
    except (TypeError, ValueError):
        pass
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return repr(value)


@lru_cache(maxsize=1)
def _library_roots() -> tuple[str, ...]:
    roots: set[str] = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(os.path.realpath(path))
    for path in [*getattr(site, "getsitepackages", list)(), site.getusersitepackages()]:
        roots.add(os.path.realpath(path))
    return tuple(sorted(roots))


@lru_cache(maxsize=4096)
def _user_file(path: str) -> bool:
    real = os.path.realpath(path)
    parts = set(PurePath(real).parts)
    if "site-packages" in parts or "dist-packages" in parts:
        return False
    return not any(real == root or real.startswith(root + os.sep) for root in _library_roots())


def is_user_module(name: str | None) -> bool:
    """Whether module ``name`` is user code (not the standard library, a package or Plinth).

    Plinth's own examples count as user code.

    Example:
        >>> is_user_module("json"), is_user_module("plinth.pipelines.steps")
        (False, False)
    """
    if not name:
        return False
    if name == "plinth" or name.startswith("plinth."):
        return name.startswith("plinth.examples")
    if name in ("__main__", "__mp_main__"):
        return True
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None)
    if module is None or not path:
        return False
    return _user_file(path)


def _source(obj: Any) -> str:
    """The normalized source of a function or class: its syntax tree without decorators."""
    try:
        text = textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        return _code_fingerprint(code) if code is not None else repr(obj)
    try:
        tree = ast.parse(text)
    except SyntaxError:  # a lambda in the middle of an expression
        return text.strip()
    for node in tree.body[:1]:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            node.decorator_list = []
    return ast.dump(tree)


def _code_fingerprint(code: types.CodeType) -> str:
    """A stable description of a code object (for functions without source)."""
    consts = [
        _code_fingerprint(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts
    ]
    return repr((code.co_code.hex(), consts, code.co_names, code.co_varnames))


def _names(code: types.CodeType) -> list[str]:
    """Global and attribute names used by a code object and the code nested in it."""
    found = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found.extend(_names(const))
    return list(dict.fromkeys(found))


def _constant(value: Any) -> str | None:
    """A canonical text for a simple constant a step reads, or None."""
    if isinstance(value, bool | int | float | str | bytes | type(None)):
        text = repr(value)
    elif isinstance(value, list | tuple | dict | frozenset | set):
        try:
            text = canonical_json(value)
        except (TypeError, ValueError):
            return None
    else:
        return None
    return text if len(text) <= MAX_CONSTANT_BYTES else None


class _Collector:
    """Walks user code from one function, gathering (name, source) parts in a stable order."""

    def __init__(self) -> None:
        self.parts: list[tuple[str, str]] = []
        self.seen: set[int] = set()

    def function(self, fn: Any) -> None:
        from plinth.pipelines.steps import Step

        if isinstance(fn, Step):
            fn = fn.fn
        fn = inspect.unwrap(fn)
        if id(fn) in self.seen or not isinstance(fn, types.FunctionType):
            return
        self.seen.add(id(fn))
        key = f"{fn.__module__}:{fn.__qualname__}"
        self.parts.append((key, _source(fn)))
        self._references(key, fn.__code__, fn.__globals__, fn)

    def cls(self, cls: type) -> None:
        if id(cls) in self.seen:
            return
        self.seen.add(id(cls))
        key = f"{cls.__module__}:{cls.__qualname__}"
        self.parts.append((key, _source(cls)))
        module = sys.modules.get(cls.__module__)
        namespace = vars(module) if module else {}
        for base in cls.__mro__[1:]:
            if is_user_module(base.__module__):
                self.cls(base)
        for member in vars(cls).values():
            if isinstance(member, staticmethod | classmethod):
                member = member.__func__
            if isinstance(member, property):
                member = member.fget
            if isinstance(member, types.FunctionType):
                self._references(key, member.__code__, member.__globals__ or namespace, None)

    def _references(
        self, key: str, code: types.CodeType, namespace: Mapping[str, Any], fn: Any
    ) -> None:
        names = _names(code)
        values: list[tuple[str, Any]] = [(n, namespace[n]) for n in names if n in namespace]
        if fn is not None and fn.__closure__:
            for name, cell in zip(code.co_freevars, fn.__closure__, strict=False):
                try:
                    values.append((name, cell.cell_contents))
                except ValueError:  # an empty cell
                    continue
        for name, value in values:
            self.value(f"{key}.{name}", value, names)

    def value(self, key: str, value: Any, names: list[str]) -> None:
        from plinth.pipelines.steps import Step

        if isinstance(value, Step):
            self.function(value)
        elif isinstance(value, types.FunctionType):
            if is_user_module(value.__module__):
                self.function(value)
        elif isinstance(value, type):
            if is_user_module(value.__module__):
                self.cls(value)
        elif isinstance(value, types.ModuleType):
            if is_user_module(value.__name__):
                for attr in names:
                    member = getattr(value, attr, None)
                    if member is not None and getattr(member, "__module__", None) == value.__name__:
                        self.value(f"{value.__name__}.{attr}", member, names)
        else:
            constant = _constant(value)
            if constant is not None:
                self.parts.append((key, constant))
            elif is_user_module(type(value).__module__):
                self.cls(type(value))


def code_hash(fn: Any) -> str:
    """Return the sha256 of a step function's code and of the user code it references.

    Example:
        >>> def helper(x):
        ...     return x + 1
        >>> def f(x):
        ...     return helper(x)
        >>> len(code_hash(f))
        64
    """
    collector = _Collector()
    collector.function(fn)
    digest = hashlib.sha256()
    for key, text in collector.parts:
        digest.update(key.encode())
        digest.update(b"\0")
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def cache_key(
    code: str, params: Any, tables: Mapping[str, int], outputs: tuple[str, ...] | list[str]
) -> str:
    """Return a step's cache key from its code hash, resolved parameters (input artifacts
    appear in them as their digests), table versions and output names.

    Example:
        >>> len(cache_key("ab" * 32, {"x": 1}, {"flights": 3}, ["output"]))
        64
    """
    payload = canonical_json(
        {
            "format": CACHE_FORMAT,
            "code": code,
            "params": params,
            "tables": dict(tables),
            "outputs": list(outputs),
        }
    )
    return hashlib.sha256(payload.encode()).hexdigest()
