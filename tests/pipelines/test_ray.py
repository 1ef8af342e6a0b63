"""The Ray executor on a local Ray head (started by the test session).

Locally these skip when Ray cannot be started; under ``CI=true`` that is a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plinth.errors import PipelineError, StepFailedError
from plinth.pipelines import run
from tests.pipelines import flows

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_cluster(ray_address: str) -> Iterator[str]:
    """This process connected to the session's Ray head for the module's tests."""
    import ray

    ray.init(address=ray_address, logging_level="ERROR", log_to_driver=False)
    try:
        yield ray_address
    finally:
        ray.shutdown()


def test_steps_run_as_ray_tasks_with_retries_logs_and_cache(ws, ray_cluster, tmp_path: Path):
    from plinth.pipelines.executors.ray import RayExecutor

    result = run(flows.on_ray, {"n": 4}, ws=ws, executor=RayExecutor(address=ray_cluster))
    assert result.value["total"] == 6
    where = result.value["where"]
    assert where["task"] is not None  # it ran inside a Ray task
    assert result.log("numbers") == "making 4 numbers\n"
    with ws.catalog.session() as session:
        from plinth.catalog.models import PipelineRun

        assert session.get(PipelineRun, result.run_id).executor == "ray"

    marker = tmp_path / "attempts"
    flaky = run(flows.retrying, {"marker": str(marker), "fail_times": 1}, ws=ws, executor="ray")
    assert flaky.steps["flaky"].attempts == 2 and flaky.value == 1
    again = run(flows.on_ray, {"n": 4}, ws=ws, executor="ray")
    assert {s.status for s in again.steps.values()} == {"cached"}


def test_failures_and_impossible_resources(ws, ray_cluster):
    with pytest.raises(StepFailedError, match="exploded on purpose") as info:
        run(flows.failing, ws=ws, executor="ray")
    assert info.value.result.steps["later"].status == "skipped"
    with pytest.raises(PipelineError, match="asks for cpu=512, more than the Ray cluster has"):
        run(flows.too_big, ws=ws, executor="ray")
    assert len(ws.pipelines.runs()) == 1  # the impossible one was rejected before it ran
