"""Pipelines the tests run, importable as ``tests.pipelines.flows`` (also by Ray workers)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from plinth.pipelines import Resources, Table, context, pipeline, step


@step
def numbers(n: int) -> list[int]:
    print(f"making {n} numbers")
    return list(range(n))


@step
def total(values: list[int]) -> int:
    return sum(values)


@pipeline
def simple(n: int = 4):
    return total(numbers(n))


@step
def nap(seconds: float, tag: str) -> str:
    time.sleep(seconds)
    return tag


@step
def pair(a: str, b: str) -> list[str]:
    return [a, b]


@pipeline
def parallel(seconds: float = 1.0):
    return pair(nap(seconds, "a"), nap(seconds, "b"))


@step(retries=2, retry_delay=0.05)
def flaky(marker: str, fail_times: int) -> int:
    path = Path(marker)
    count = int(path.read_text()) if path.exists() else 0
    path.write_text(str(count + 1))
    print(f"attempt {count + 1}", file=sys.stderr)
    if count < fail_times:
        raise RuntimeError(f"flaky failure {count + 1}")
    return count + 1


@pipeline
def retrying(marker: str = "", fail_times: int = 1):
    return total(numbers(flaky(marker, fail_times)))


@step(retries=1, retry_delay=0)
def explode(values: list[int]) -> int:
    print("about to fail")
    raise ValueError("exploded on purpose")


@step
def passthrough(value: int) -> int:
    return value


@pipeline
def failing():
    base = numbers(3)
    bad = explode(base)
    passthrough(bad)
    passthrough.named("later")(passthrough.named("sooner")(bad))
    return total(base)


@step
def chatty() -> int:
    print("to stdout")
    print("to stderr", file=sys.stderr)
    subprocess.run(["echo", "from a subprocess"], check=True)
    os.write(1, b"straight to fd 1\n")
    return 1


@pipeline
def logging_flow():
    return chatty()


@step(retries=2, retry_delay=0)
def crash() -> int:
    os._exit(3)


@pipeline
def crashing():
    return crash()


@step(retries=2)
def unstorable() -> object:
    return threading.Lock()


@pipeline
def unstorable_flow():
    return unstorable()


@step(outputs=["head", "rest"])
def split(values: list[int]) -> tuple[list[int], list[int]]:
    return values[:1], values[1:]


@step
def who(ws, extra: int = 0) -> dict:
    ctx = context()
    return {
        "step": ctx.step,
        "attempt": ctx.attempt,
        "run": ctx.pipeline_run_id,
        "home": str(ws.home),
        "extra": extra,
    }


@pipeline
def shapes(n: int = 5):
    head, rest = split(numbers(n))
    return {"head": head, "rest": total(rest), "who": who(extra=n)}


@step
def count_rows(events: Table = Table("events")) -> int:
    return events.read().num_rows


@step(reads=["events"])
def newest(ws) -> int:
    return ws.lake.version("events").version


@pipeline
def tables():
    return {"rows": count_rows(), "version": newest()}


@step(resources=Resources(cpu=1, memory="64MiB"))
def where() -> dict:
    import ray

    return {"pid": os.getpid(), "task": ray.get_runtime_context().get_task_id()}


@pipeline
def on_ray(n: int = 3):
    return {"total": total(numbers(n)), "where": where()}


@step(resources=Resources(cpu=512))
def greedy() -> int:
    return 1


@pipeline
def too_big():
    return greedy()


@pipeline
def fan_in(n: int = 3):
    parts = [numbers.named(f"part_{i}")(i) for i in range(n)]
    return pair.named("merge")(parts, {"first": parts[0]})
