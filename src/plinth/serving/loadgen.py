"""An open-loop HTTP load generator: requests at a fixed rate, latency from the schedule.

Each request is due at ``start + i / rate``; its latency runs from that due time, not from
when a connection happened to be free, so a slow server cannot hide its queueing
(coordinated omission). Requests go over keep-alive HTTP/1.1 connections opened as needed up
to ``connections``. The client is plain asyncio sockets with pre-built request bytes, so one
core can offer several thousand requests per second and the server, not the client, is what
gets measured.

The result is the load-test JSON that ``plinth capacity`` reads.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from plinth.errors import ConfigError
from plinth.serving.load_result import LoadStep, LoadTestResult


def _summary(
    rate: float, total: int, statuses: dict[str, int], seconds: np.ndarray, elapsed: float
) -> LoadStep:
    done = seconds * 1000.0
    ok = sum(n for k, n in statuses.items() if k.startswith("2"))
    pct = np.percentile(done, [50, 95, 99]) if done.size else np.full(3, np.nan)
    return LoadStep(
        rate=rate,
        achieved=ok / elapsed if elapsed > 0 else 0.0,
        duration_s=elapsed,
        requests=total,
        errors=total - ok,
        p50_ms=float(pct[0]),
        p95_ms=float(pct[1]),
        p99_ms=float(pct[2]),
        max_ms=float(done.max()) if done.size else float("nan"),
        statuses=statuses,
        latencies_ms=done,
    )


def _request_bytes(host: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, payload: bytes) -> tuple[int, bytes]:
        self.writer.write(payload)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            body = bytearray()
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
            return status, bytes(body)
        return status, await self.reader.readexactly(length) if length else b""

    def close(self) -> None:
        self.writer.close()


async def _run_step(
    host: str,
    port: int,
    payloads: Sequence[bytes],
    rate: float,
    duration_s: float,
    connections: int,
    timeout_s: float,
) -> LoadStep:
    total = max(1, round(rate * duration_s))
    idle: list[_Connection] = []
    opened = 0
    slots = asyncio.Semaphore(connections)
    latencies = np.full(total, np.nan)
    statuses: dict[str, int] = {}
    # perf_counter, not loop.time(): libuv's clock ticks in whole milliseconds.
    clock = time.perf_counter
    start = clock() + 0.05

    async def one(i: int, due: float) -> None:
        nonlocal opened
        async with slots:
            conn = idle.pop() if idle else None
            try:
                if conn is not None:
                    try:
                        status, _ = await asyncio.wait_for(
                            conn.exchange(payloads[i % len(payloads)]), timeout_s
                        )
                    except (ConnectionError, asyncio.IncompleteReadError):
                        # The server closed an idle keep-alive connection: retry on a new one.
                        conn.close()
                        conn = None
                if conn is None:
                    reader, writer = await asyncio.open_connection(host, port)
                    opened += 1
                    conn = _Connection(reader, writer)
                    status, _ = await asyncio.wait_for(
                        conn.exchange(payloads[i % len(payloads)]), timeout_s
                    )
                latencies[i] = clock() - due
                key = str(status)
                idle.append(conn)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as e:
                key = type(e).__name__
                if conn is not None:
                    conn.close()
            statuses[key] = statuses.get(key, 0) + 1

    tasks = []
    for i in range(total):
        due = start + i / rate
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i, due)))
    await asyncio.gather(*tasks)
    elapsed = clock() - start
    for conn in idle:
        conn.close()
    return _summary(rate, total, statuses, latencies[~np.isnan(latencies)], elapsed)


async def _run_closed(
    host: str,
    port: int,
    payloads: Sequence[bytes],
    duration_s: float,
    connections: int,
    timeout_s: float,
) -> LoadStep:
    clock = time.perf_counter
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    start = clock()
    end = start + duration_s

    async def worker(offset: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        conn = _Connection(reader, writer)
        i = offset
        try:
            while clock() < end:
                begin = clock()
                try:
                    status, _ = await asyncio.wait_for(
                        conn.exchange(payloads[i % len(payloads)]), timeout_s
                    )
                    key = str(status)
                    latencies.append(clock() - begin)
                except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
                    key = type(e).__name__
                    conn.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    conn = _Connection(reader, writer)
                statuses[key] = statuses.get(key, 0) + 1
                i += connections
        finally:
            conn.close()

    await asyncio.gather(*(worker(i) for i in range(connections)))
    elapsed = clock() - start
    total = sum(statuses.values())
    return _summary(float("inf"), total, statuses, np.asarray(latencies), elapsed)


def saturate(
    url: str,
    bodies: Sequence[Any],
    *,
    duration_s: float = 10.0,
    connections: int = 64,
    timeout_s: float = 10.0,
) -> LoadStep:
    """Closed loop: ``connections`` clients each send the next request as soon as the last
    is answered; the answered rate is the server's throughput at saturation.

    Example:
        >>> # saturate("http://127.0.0.1:8080/v1/models/m/predict", [body]).achieved
    """
    host, port, path = _target(url)
    payloads = _payloads(host, port, path, bodies, {})
    return _run(_run_closed(host, port, payloads, duration_s, connections, timeout_s))


def _target(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(
            f"Cannot load-test '{url}'.", hint="Give an http://HOST:PORT/PATH address."
        )
    return parts.hostname, parts.port or 80, parts.path or "/"


def _payloads(
    host: str, port: int, path: str, bodies: Sequence[Any], headers: dict[str, str]
) -> list[bytes]:
    if not bodies:
        raise ConfigError("No request bodies to send.", hint="Pass at least one body.")
    out = []
    for item in bodies:
        body, extra = item if isinstance(item, tuple) else (item, {})
        encoded = body if isinstance(body, bytes) else json.dumps(body).encode()
        out.append(_request_bytes(f"{host}:{port}", path, encoded, {**headers, **extra}))
    return out


def load_test(
    url: str,
    bodies: Sequence[Any],
    rates: Sequence[float],
    *,
    duration_s: float = 10.0,
    connections: int = 64,
    timeout_s: float = 10.0,
    headers: dict[str, str] | None = None,
    model: str | None = None,
    workers: int = 1,
) -> LoadTestResult:
    """Offer each rate in ``rates`` for ``duration_s`` seconds and measure the answers.

    ``bodies`` are sent in turn (JSON objects are encoded once, up front); an item may be a
    ``(body, headers)`` pair, e.g. to give each request its own ``X-Request-ID``.

    Example:
        >>> # load_test("http://127.0.0.1:8080/v1/models/delay/predict",
        >>> #           [{"records": [{"origin": "JFK", ...}]}], rates=[100, 300]).steps[0].p99_ms
    """
    import os

    host, port, path = _target(url)
    if any(r <= 0 for r in rates):
        raise ConfigError("Request rates must be positive.", hint="Use e.g. --rates 100,300.")
    payloads = _payloads(host, port, path, bodies, headers or {})
    started = datetime.now(UTC).isoformat(timespec="seconds")

    async def run_all() -> list[LoadStep]:
        return [
            await _run_step(host, port, payloads, float(r), duration_s, connections, timeout_s)
            for r in rates
        ]

    steps = _run(run_all())
    return LoadTestResult(url, model, workers, os.cpu_count() or 1, started, steps)


def _run(coro: Any) -> Any:
    import gc

    # A collection pause in the client would be measured as server latency.
    gc.collect()
    gc.disable()
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.run(coro)
    finally:
        gc.enable()


def wait_ready(base_url: str, timeout_s: float = 60.0) -> float:
    """Poll ``/v2/health/ready`` until it answers 200; return the seconds it took.

    Example:
        >>> # wait_ready("http://127.0.0.1:8080")
    """
    import urllib.error
    import urllib.request

    begin = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(f"{base_url}/v2/health/ready", timeout=2) as answer:
                if answer.status == 200:
                    return time.monotonic() - begin
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() - begin > timeout_s:
            raise ConfigError(
                f"The server at {base_url} was not ready after {timeout_s:.0f} s.",
                hint="Look at the server's log for a model that failed to load.",
            )
        time.sleep(0.1)
