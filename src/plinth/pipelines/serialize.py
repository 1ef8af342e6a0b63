"""Step outputs as artifacts: typed serializers, with pickle as the fallback.

Every stored value starts with a one-line header naming its serializer (``plinth-value/1
arrow``), then the payload: Arrow tables and pandas DataFrames as Arrow IPC streams, NumPy
arrays in ``.npy`` format, bytes as they are, JSON for values that survive a JSON round trip
unchanged, and pickle for the rest. Pickles execute code when loaded, so :func:`load_value`
only unpickles a digest the caller vouches the catalog recorded as a step output.
"""

from __future__ import annotations

import io
import json
import pickle
from typing import Any

from plinth.errors import PipelineError

__all__ = ["KINDS", "dump_value", "load_value", "value_kind"]

MAGIC = b"plinth-value/1 "
KINDS = ("bytes", "json", "arrow", "pandas", "numpy", "pickle")


def _type_name(value: Any) -> str:
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def _is(value: Any, package: str, name: str) -> bool:
    """Whether ``value`` is an instance of ``package``'s class ``name`` (without importing it)."""
    return any(
        cls.__name__ == name and cls.__module__.split(".")[0] == package
        for cls in type(value).__mro__
    )


def value_kind(value: Any) -> str:
    """The serializer a value gets (cheap checks first; pickle when nothing fits).

    Example:
        >>> value_kind({"auc": 0.7}), value_kind(b"x"), value_kind({1, 2})
        ('json', 'bytes', 'pickle')
    """
    if isinstance(value, bytes | bytearray | memoryview):
        return "bytes"
    if _is(value, "pyarrow", "Table"):
        return "arrow"
    if _is(value, "pandas", "DataFrame"):
        return "pandas"
    if _is(value, "numpy", "ndarray") and value.dtype != object:
        return "numpy"
    if isinstance(value, dict | list | str | int | float | bool | type(None)):
        try:
            text = json.dumps(value, allow_nan=False)
            if json.loads(text) == value and _same_types(value, json.loads(text)):
                return "json"
        except (TypeError, ValueError, RecursionError):
            pass
    return "pickle"


def _same_types(a: Any, b: Any) -> bool:
    """Whether a JSON round trip kept every type (tuples, int-keyed dicts would change)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return all(_same_types(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return all(_same_types(a[k], b[k]) for k in a)
    return True


def _payload(kind: str, value: Any) -> bytes:
    if kind == "bytes":
        return bytes(value)
    if kind == "json":
        return json.dumps(value, allow_nan=False, separators=(",", ":")).encode()
    if kind in ("arrow", "pandas"):
        import pyarrow as pa

        table = value if kind == "arrow" else pa.Table.from_pandas(value)
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue()
    if kind == "numpy":
        import numpy as np

        sink = io.BytesIO()
        np.save(sink, value, allow_pickle=False)
        return sink.getvalue()
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def dump_value(value: Any, step: str = "?", output: str = "output") -> bytes:
    """Serialize a step output; raises :class:`PipelineError` naming the step if it cannot be.

    Example:
        >>> load_value(dump_value([1, 2]), trusted=False)
        [1, 2]
    """
    kind = value_kind(value)
    try:
        payload = _payload(kind, value)
    except Exception as exc:
        if kind == "pandas":  # mixed object columns Arrow cannot type: keep them as a pickle
            kind = "pickle"
            try:
                payload = _payload(kind, value)
            except Exception as again:
                raise _unstorable(step, output, value, again) from again
        else:
            raise _unstorable(step, output, value, exc) from exc
    return MAGIC + kind.encode() + b"\n" + payload


def _unstorable(step: str, output: str, value: Any, exc: BaseException) -> PipelineError:
    return PipelineError(
        f"Step '{step}' returned a {_type_name(value)} as '{output}', which cannot be stored "
        f"as an artifact: {type(exc).__name__}: {exc}.",
        hint="Return data (Arrow, pandas, NumPy, JSON-like values, bytes) or a picklable object.",
    )


def split(data: bytes) -> tuple[str, bytes]:
    """Return the serializer name and the payload of a stored value.

    Example:
        >>> split(dump_value({"a": 1}))
        ('json', b'{"a":1}')
    """
    if not data.startswith(MAGIC):
        raise PipelineError(
            "This artifact is not a stored step output.",
            hint="Load step outputs through a pipeline result or 'ws.pipelines.output'.",
        )
    end = data.index(b"\n", len(MAGIC))
    return data[len(MAGIC) : end].decode(), data[end + 1 :]


def load_value(data: bytes, *, trusted: bool) -> Any:
    """Deserialize a stored step output; pickles only when ``trusted`` (a digest the catalog
    recorded as a step output).

    Example:
        >>> load_value(dump_value(b"raw"), trusted=False)
        b'raw'
    """
    kind, payload = split(data)
    if kind == "bytes":
        return payload
    if kind == "json":
        return json.loads(payload)
    if kind in ("arrow", "pandas"):
        import pyarrow as pa

        table = pa.ipc.open_stream(payload).read_all()
        return table if kind == "arrow" else table.to_pandas()
    if kind == "numpy":
        import numpy as np

        return np.load(io.BytesIO(payload), allow_pickle=False)
    if kind == "pickle":
        if not trusted:
            raise PipelineError(
                "Refusing to unpickle an artifact the catalog did not record as a step output.",
                hint="Load outputs of recorded pipeline runs only.",
            )
        return pickle.loads(payload)
    raise PipelineError(f"Unknown stored value kind '{kind}'.", hint="Upgrade Plinth.")
