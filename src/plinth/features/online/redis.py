"""The scale-out online store on Redis (redis-py): one string per entity.

Layout:

* ``plinth:<view>:<encoded key>`` holds ``<event time µs>|<schema digest>|<JSON values>``;
* ``plinth::schema:<digest>`` holds a value schema (feature names and kinds);
* ``plinth::views`` is a hash from view name to its key columns.

Writes go in batches through a small Lua script that replaces a value only when the new event
time is at least the stored one, so each batch is atomic and the rule holds under concurrent
writers; batches are pipelined. Reads fetch all requested entities with one ``MGET``. The
store needs a single Redis server (not Redis Cluster: a batch touches keys of many slots).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import redis

from plinth._core.urls import redact_url
from plinth.errors import ConfigError, SchemaMismatchError, StorageError
from plinth.features.online.base import (
    Found,
    OnlineRow,
    OnlineStore,
    ValueSchema,
    assemble,
    check_view_name,
    encode_entity,
    prepare_write,
)

__all__ = ["RedisOnlineStore"]

CONNECT_TIMEOUT_S = 5.0
SOCKET_TIMEOUT_S = 60.0
KEYS_PER_SCRIPT = 500
SCRIPTS_PER_ROUND_TRIP = 20
KEYS_PER_MGET = 10_000
SCAN_COUNT = 1_000
VIEWS_KEY = "plinth::views"
SCHEMA_PREFIX = "plinth::schema:"

# Replace each value only when the new event time (the text before the first '|') is at least
# the stored one; return how many values were replaced. Lua numbers are doubles, exact for
# microsecond times until the year 2255.
_UPSERT_LUA = """
local written = 0
for i = 1, #KEYS do
  local new = ARGV[i]
  local current = redis.call('GET', KEYS[i])
  local stored = current and tonumber(string.match(current, '^(-?%d+)|'))
  if (not stored) or tonumber(string.match(new, '^(-?%d+)|')) >= stored then
    redis.call('SET', KEYS[i], new)
    written = written + 1
  end
end
return written
"""


def _prefix(view: str) -> str:
    return f"plinth:{check_view_name(view)}:"


class RedisOnlineStore(OnlineStore):
    """Online store on one Redis server, for many serving processes and machines.

    Example:
        >>> # store = RedisOnlineStore("redis://localhost:6379/0")
        >>> # store.read("weather", [("JFK",)], ["temp"], ttl=None)
    """

    def __init__(self, url: str) -> None:
        self.url = redact_url(url)
        try:
            self._client = redis.Redis.from_url(
                url,
                socket_connect_timeout=CONNECT_TIMEOUT_S,
                socket_timeout=SOCKET_TIMEOUT_S,
            )
        except ValueError as exc:
            raise ConfigError(
                f"Online store URL '{self.url}' is not a valid Redis URL: {exc}.",
                hint="Use redis://[:password@]host:6379/0 (or rediss:// for TLS).",
            ) from exc
        self._upsert = self._client.register_script(_UPSERT_LUA)
        self._schemas: dict[bytes, ValueSchema] = {}
        with self._guard("reach"):
            self._client.ping()

    @contextlib.contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        try:
            yield
        except redis.exceptions.RedisError as exc:
            raise StorageError(
                f"Cannot {action} the Redis online store at '{self.url}': {exc}.",
                hint="Check that the Redis server runs and answers at that address, and the "
                "password and database number in PLINTH_ONLINE_URL.",
            ) from exc

    # -- writes ----------------------------------------------------------------------------

    def _register(self, view: str, keys: Sequence[str]) -> None:
        text = json.dumps(list(keys))
        if not self._client.hsetnx(VIEWS_KEY, view, text):
            stored = self._client.hget(VIEWS_KEY, view)
            if stored is not None and stored.decode() != text:
                raise SchemaMismatchError(
                    f"Feature view '{view}' is stored with keys {json.loads(stored)}, not "
                    f"{list(keys)}.",
                    hint=f"Delete the view's online rows first (delete_view('{view}')), then "
                    "materialize it again.",
                )

    def write(self, view: str, keys: list[str], data: pa.Table, *, timestamp: str) -> int:
        prefix = _prefix(view)
        prepared = prepare_write(keys, data, timestamp)
        schema = prepared.schema
        tag = f"|{schema.digest}|"
        written = 0
        with self._guard(f"write view '{view}' to"), contextlib.closing(iter(prepared)) as rows:
            self._register(view, keys)
            # The schema goes first, so a reader never meets a value it cannot decode.
            self._client.set(SCHEMA_PREFIX + schema.digest, schema.text, nx=True)
            for encoded, times, payloads in rows:
                names = [prefix + key for key in encoded]
                values = [f"{t}{tag}{p}" for t, p in zip(times, payloads, strict=True)]
                written += self._send(names, values)
        self._schemas[schema.digest.encode()] = schema
        return written

    def _send(self, names: list[str], values: list[str]) -> int:
        step = KEYS_PER_SCRIPT * SCRIPTS_PER_ROUND_TRIP
        written = 0
        for start in range(0, len(names), step):
            pipe = self._client.pipeline(transaction=False)
            for lo in range(start, min(start + step, len(names)), KEYS_PER_SCRIPT):
                hi = lo + KEYS_PER_SCRIPT
                self._upsert(keys=names[lo:hi], args=values[lo:hi], client=pipe)
            written += sum(int(n) for n in pipe.execute())
        return written

    # -- reads -----------------------------------------------------------------------------

    def _fetch(self, names: list[str]) -> list[bytes | None]:
        if len(names) <= KEYS_PER_MGET:
            return self._client.mget(names)
        pipe = self._client.pipeline(transaction=False)
        for start in range(0, len(names), KEYS_PER_MGET):
            pipe.mget(names[start : start + KEYS_PER_MGET])
        return [value for chunk in pipe.execute() for value in chunk]

    def _load_schemas(self, digests: set[bytes]) -> None:
        missing = sorted(d for d in digests if d not in self._schemas)
        if not missing:
            return
        texts = self._client.mget([SCHEMA_PREFIX + d.decode() for d in missing])
        for digest, text in zip(missing, texts, strict=True):
            if text is None:
                raise StorageError(
                    f"The Redis online store at '{self.url}' holds values of an unknown schema "
                    f"({digest.decode()}).",
                    hint="Its schema keys were removed; materialize the views again.",
                )
            self._schemas[digest] = ValueSchema.from_text(text)

    def read(
        self,
        view: str,
        entities: Sequence[tuple[Any, ...]],
        features: Sequence[str],
        *,
        ttl: timedelta | None,
        now: datetime | None = None,
    ) -> list[OnlineRow]:
        prefix = _prefix(view)
        keys = [encode_entity(entity) for entity in entities]
        unique = list(dict.fromkeys(keys))
        found: dict[str, Found] = {}
        with self._guard(f"read view '{view}' from"):
            raw = self._fetch([prefix + key for key in unique]) if unique else []
            parsed: list[tuple[str, int, bytes, bytes]] = []
            for key, value in zip(unique, raw, strict=True):
                if value is not None:
                    micros, digest, payload = value.split(b"|", 2)
                    parsed.append((key, int(micros), digest, payload))
            self._load_schemas({digest for _, _, digest, _ in parsed})
        schemas = self._schemas
        for key, micros, digest, payload in parsed:
            found[key] = (micros, schemas[digest], payload)
        return assemble(keys, found, features, ttl=ttl, now=now)

    # -- administration --------------------------------------------------------------------

    def _scan(self, view: str) -> Iterator[bytes]:
        yield from self._client.scan_iter(match=_prefix(view) + "*", count=SCAN_COUNT)

    def delete_view(self, view: str) -> None:
        with self._guard(f"delete view '{view}' from"):
            batch: list[bytes] = []
            for name in self._scan(view):
                batch.append(name)
                if len(batch) >= SCAN_COUNT:
                    self._client.unlink(*batch)
                    batch = []
            if batch:
                self._client.unlink(*batch)
            self._client.hdel(VIEWS_KEY, view)

    def views(self) -> list[str]:
        with self._guard("list the views of"):
            return sorted(name.decode() for name in self._client.hkeys(VIEWS_KEY))

    def count(self, view: str) -> int:
        with self._guard(f"count view '{view}' in"):
            return sum(1 for _ in self._scan(view))

    def close(self) -> None:
        with contextlib.suppress(redis.exceptions.RedisError):
            self._client.close()

    def __repr__(self) -> str:
        return f"RedisOnlineStore({self.url!r})"
