"""Cost accounting on a real workspace: runs, pipeline runs, serving, models, storage, waste, CLI.

Prices are overridden to round numbers so every expected figure is exact arithmetic.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from plinth._core.clock import utcnow
from plinth._core.settings import Settings
from plinth.catalog.models import (
    Deployment,
    ModelVersion,
    PipelineRun,
    RegisteredModel,
    StepRun,
    TableVersion,
)
from plinth.catalog.models import Run as RunRecord
from plinth.cli.main import main
from plinth.cost.accounting import (
    cost_report,
    model_costs,
    parse_since,
    pipeline_costs,
    run_costs,
)
from plinth.cost.prices import GIB
from plinth.cost.standing import serving_costs, storage_cost
from plinth.cost.waste import run_utilization, verdict, waste_report
from plinth.errors import ConfigError
from plinth.serving.prediction_log import LogEntry, to_arrow
from plinth.tracking.resources import Usage
from plinth.tracking.run import attach_run, start_run
from plinth.workspace import Workspace

PRICES = {"cpu_core_hour": 0.05, "memory_gb_hour": 0.01, "gpu_hour": 2.0, "gpu_hour_t4": 0.5}
HOUR = 3600.0
T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)


def usage(wall: float, cpu: float, rss: int = 0, gpus: int = 0, gpu_s: float = 0.0) -> Usage:
    return Usage("host", wall, cpu, rss, gpus, gpu_s, 0)


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace(settings=Settings(home=tmp_path / "ws", user="tester", prices=PRICES))
    workspace.init()
    yield workspace
    workspace.close()


def finished_run(ws: Workspace, used: Usage, requested: dict[str, Any] | None = None) -> str:
    run = start_run(ws, "exp", requested=requested, capture=False)
    run.end("finished", usage=used)
    return run.id


def set_run(ws: Workspace, run_id: str, **values: Any) -> None:
    with ws.catalog.session() as session:
        record = session.get(RunRecord, run_id)
        for key, value in values.items():
            setattr(record, key, value)


def register(ws: Workspace, name: str, run_id: str | None = None) -> None:
    with ws.catalog.session() as session:
        session.add(RegisteredModel(name=name, created_at=T0, created_by="tester"))
        if run_id:
            session.add(
                ModelVersion(
                    model_name=name, version=1, flavor="sklearn", manifest_digest="0" * 64,
                    files={}, run_id=run_id, created_at=T0, created_by="tester",
                )
            )  # fmt: skip


def log_predictions(ws: Workspace, model: str, start: datetime) -> None:
    """4,000 served requests of one row over exactly two hours (100 ms each), plus 500 shadow."""

    def entry(i: int, route: str, at: datetime, latency: float) -> LogEntry:
        inputs, kinds = {"x": [float(i)]}, {"x": "float"}
        return LogEntry(f"r{i}", model, 1, route, at, None, latency, inputs, kinds, np.ones(1), 1)

    step = 2 * HOUR / 3999
    entries = [entry(i, "primary", start + timedelta(seconds=step * i), 100.0) for i in range(4000)]
    entries += [entry(i, "shadow", start + timedelta(seconds=i), 40.0) for i in range(500)]
    ws.lake.ingest(to_arrow(entries), table=f"predictions__{model}", checks=False)


def test_run_cost_from_its_recorded_use(ws: Workspace):
    run_id = finished_run(ws, usage(HOUR, 2 * HOUR, rss=4 * GIB, gpus=1, gpu_s=HOUR))
    [cost] = run_costs(ws)
    assert cost.run_id == run_id and len(cost.ranks) == 1
    assert cost.cpu_usd == pytest.approx(2 * 0.05)
    assert cost.memory_usd == pytest.approx(4 * 0.01)
    assert cost.gpu_usd == pytest.approx(2.0)  # no device recorded: gpu_hour
    assert cost.usd == pytest.approx(2.14)
    assert cost.wall_seconds == HOUR


def test_run_gpu_priced_by_the_model_in_its_environment(ws: Workspace):
    run_id = finished_run(ws, usage(HOUR, 0, gpus=2, gpu_s=2 * HOUR))
    set_run(ws, run_id, environment={"gpu": {"devices": [{"name": "Tesla T4"}]}})
    [cost] = run_costs(ws)
    assert cost.gpu_model == "t4" and cost.gpu_usd == pytest.approx(2 * 0.5)


def test_a_distributed_run_sums_its_ranks(ws: Workspace):
    run = start_run(ws, "ddp", launcher="torchrun", requested={"cpus": 1, "nproc": 2},
                    capture=False)  # fmt: skip
    attach_run(ws, run.id, rank=1).end("finished", usage=usage(HOUR, 0.5 * HOUR, rss=GIB))
    run.end("finished", usage=usage(HOUR, HOUR, rss=2 * GIB))
    [cost] = run_costs(ws)
    assert len(cost.ranks) == 2
    assert cost.usd == pytest.approx(1.5 * 0.05 + 3 * 0.01)


def test_since_filters_runs_by_start(ws: Workspace):
    old = finished_run(ws, usage(HOUR, HOUR))
    new = finished_run(ws, usage(HOUR, HOUR))
    set_run(ws, old, started_at=utcnow() - timedelta(days=40))
    assert [r.run_id for r in run_costs(ws, parse_since("30d"))] == [new]
    assert {r.run_id for r in run_costs(ws)} == {old, new}


@pytest.mark.parametrize("text", ["yesterday", "30x", "2026-13-01", "d30"])
def test_bad_since_is_a_clear_error(text: str):
    with pytest.raises(ConfigError, match="--since"):
        parse_since(text)


def test_since_accepts_durations_and_dates():
    now = datetime(2026, 11, 27, 10, tzinfo=UTC)
    assert parse_since("30d", now) == now - timedelta(days=30)
    assert parse_since("12h", now) == now - timedelta(hours=12)
    assert parse_since("2026-11-01", now) == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_since(None) is None
    with pytest.raises(ConfigError, match="future"):
        parse_since("2026-12-01", now)


def test_pipeline_run_costs_its_steps_and_counts_inner_runs_once(ws: Workspace):
    run_id = finished_run(ws, usage(60, 30))
    with ws.catalog.session() as session:
        started = session.get(RunRecord, run_id).started_at
    t0 = started - timedelta(seconds=60)
    with ws.catalog.session() as session:
        session.add(
            PipelineRun(id="pr_1", pipeline="flights", reference="m:f", params={},
                        executor="local", status="succeeded", started_at=t0,
                        ended_at=t0 + timedelta(hours=1), created_by="tester")
        )  # fmt: skip
        session.flush()
        for name, status, seconds, resources in (
            ("train", "succeeded", 1800, {"cpu": 2, "gpu": 0, "memory": None}),
            ("report", "succeeded", 3600, {"cpu": 1, "gpu": 0, "memory": 10 * GIB}),
            ("ingest", "cached", 0, {"cpu": 1, "gpu": 0, "memory": None}),
        ):
            session.add(
                StepRun(pipeline_run_id="pr_1", step=name, status=status, attempts=1,
                        resources=resources, started_at=t0,
                        ended_at=t0 + timedelta(seconds=seconds))
            )  # fmt: skip
    [pipeline] = pipeline_costs(ws)
    steps = {s.step: s for s in pipeline.steps}
    # train: 2 CPUs and (none named) 2 GiB per CPU for half an hour
    assert steps["train"].reserved_usd == pytest.approx((2 * 0.05 + 4 * 0.01) * 0.5)
    assert steps["train"].runs == (run_id,)
    assert steps["report"].usd == pytest.approx(0.05 + 10 * 0.01)
    assert steps["ingest"].usd == 0 and steps["ingest"].seconds == 0
    assert pipeline.usd == pytest.approx(0.07 + 0.15)
    report = cost_report(ws, "pipeline")
    [run] = run_costs(ws)
    assert run.pipeline_run == "pr_1/train"
    assert report.spend.runs_usd == 0  # counted inside its step
    assert report.spend.pipelines_usd == pytest.approx(0.22)


def test_cost_per_1000_predictions_of_a_model_served_without_a_deployment(ws: Workspace):
    run_id = finished_run(ws, usage(HOUR, HOUR))
    register(ws, "delay", run_id)
    log_predictions(ws, "delay", T0)
    [served] = serving_costs(ws)
    assert (served.name, served.recorded, served.replicas) == ("delay", False, 1)
    assert served.uptime_seconds == pytest.approx(2 * HOUR)
    assert served.predictions == 4000  # shadow answers are not served predictions
    assert served.busy_seconds == pytest.approx(400 + 500 * 0.04)
    # one default replica (1 vCPU, 2 GiB) for two hours: 2 * (0.05 + 0.02) = 0.14
    assert served.usd == pytest.approx(0.14)
    assert served.per_1000 == pytest.approx(0.035)
    [model] = model_costs(ws)
    assert (model.model, model.runs) == ("delay", (run_id,))
    assert model.training_usd == pytest.approx(0.05)
    assert model.per_1000 == pytest.approx(0.035)
    assert model.usd == pytest.approx(0.19)


def test_a_deployment_spec_sets_replicas_and_size(ws: Workspace):
    register(ws, "delay")
    log_predictions(ws, "delay", T0)
    with ws.catalog.session() as session:
        session.add(
            Deployment(name="delay-prod", model_name="delay", revision=1, target="k8s",
                       spec={"routes": [{"uri": "delay@champion", "weight": 100}],
                             "replicas": 3, "resources": {"cpu": 2, "memory": "4Gi"}},
                       created_at=T0 - timedelta(hours=8), updated_at=T0,
                       updated_by="tester")
        )  # fmt: skip
    now = T0 + timedelta(hours=2)
    [served] = serving_costs(ws, now=now)
    assert (served.name, served.target, served.replicas) == ("delay-prod", "k8s", 3)
    assert served.uptime_seconds == 10 * HOUR and served.uptime_basis == "since applied"
    assert served.usd == pytest.approx(3 * 10 * (2 * 0.05 + 4 * 0.01))
    assert served.per_1000 == pytest.approx(4.2 / 4000 * 1000)
    # --since clips the uptime and the predictions to the window
    [recent] = serving_costs(ws, T0 + timedelta(hours=1), now=now)
    assert recent.uptime_seconds == HOUR
    assert recent.predictions == pytest.approx(2000, abs=1)
    [waste] = waste_report(ws, now=now).items
    assert waste.kind == "deployment" and waste.verdict == "idle"
    busy = (400 + 20) / (10 * HOUR * 3 * 2)
    assert waste.utilization == pytest.approx(busy)
    assert waste.wasted_usd == pytest.approx(4.2 * (1 - busy))


def test_waste_flags_an_over_provisioned_run(ws: Workspace):
    asked = {"cpus": 4, "gpus": 0, "memory": 8 * GIB}
    lazy = finished_run(ws, usage(HOUR, 0.5 * HOUR, rss=GIB), asked)
    busy = finished_run(ws, usage(HOUR, 0.9 * HOUR), {"cpus": 1, "gpus": 0})
    finished_run(ws, usage(HOUR, 0.01 * HOUR))  # requested nothing: not judged
    report = waste_report(ws)
    by_name = {u.name: u for u in report.items}
    assert set(by_name) == {lazy, busy}
    over = by_name[lazy]
    assert over.cpu == pytest.approx(0.125) and over.memory == pytest.approx(0.125)
    assert over.gpu is None
    assert over.requested_usd == pytest.approx(4 * 0.05 + 8 * 0.01)
    assert over.used_usd == pytest.approx(0.5 * 0.05 + 1 * 0.01)
    assert over.wasted_usd == pytest.approx(0.28 - 0.035)
    assert over.utilization == pytest.approx(0.125) and over.verdict == "over-provisioned"
    assert by_name[busy].verdict == "ok"
    assert [u.name for u in report.flagged] == [lazy]
    assert report.items[0].name == lazy  # most money wasted first


def test_verdict_thresholds():
    assert [verdict(x) for x in (0.0, 0.099, 0.1, 0.49, 0.5, 1.0)] == [
        "idle", "idle", "over-provisioned", "over-provisioned", "ok", "ok",
    ]  # fmt: skip


def test_a_tuning_parent_is_not_judged(ws: Workspace):
    run = start_run(ws, "tune", launcher="tune", requested={"cpus": 8, "trials": 4},
                    capture=False)  # fmt: skip
    run.end("finished", usage=usage(HOUR, 1))
    [cost] = run_costs(ws)
    assert run_utilization(cost, ws_prices(ws)) is None


def ws_prices(ws: Workspace) -> Any:
    from plinth.cost.prices import prices_for

    return prices_for(ws.settings)


def test_storage_cost_of_the_lake_and_artifacts(ws: Workspace):
    import pyarrow as pa

    ws.lake.ingest(pa.table({"a": list(range(1000))}), table="t")
    ws.lake.ingest(pa.table({"a": list(range(1000))}), table="t")
    with ws.run("exp", capture=False) as run:
        run.log_artifact(b"x" * 10_000, "blob.bin")
    with ws.catalog.session() as session:
        latest = max(session.query(TableVersion).all(), key=lambda v: v.version)
        lake = latest.bytes
    now = utcnow() + timedelta(days=73)  # 73 days after the workspace's first record
    cost = storage_cost(ws, now=now, prices=ws_prices(ws))
    assert cost.lake_bytes == lake
    assert cost.artifact_bytes >= 10_000
    per_month = (cost.lake_bytes + cost.artifact_bytes) / GIB * 0.023
    assert cost.usd_per_month == pytest.approx(per_month)
    assert cost.usd == pytest.approx(per_month * cost.window_seconds / (730 * HOUR))
    assert cost.window_seconds == pytest.approx(73 * 24 * HOUR, rel=1e-3)


def test_cost_report_groups_and_refuses_an_unknown_grouping(ws: Workspace):
    finished_run(ws, usage(HOUR, HOUR))
    assert cost_report(ws, "run").total_usd == pytest.approx(0.05)
    with pytest.raises(ConfigError, match="Cannot group costs by 'team'"):
        cost_report(ws, "team")


def test_cli_prints_cost_per_1000_predictions(ws: Workspace, monkeypatch, capsys):
    monkeypatch.setenv("PLINTH_PRICES", json.dumps(PRICES))
    run_id = finished_run(ws, usage(HOUR, HOUR))
    register(ws, "delay", run_id)
    log_predictions(ws, "delay", utcnow() - timedelta(hours=3))
    home = str(ws.home)
    assert main(["cost", "--home", home]) == 0
    out = capsys.readouterr().out
    assert "per 1,000" in out and "$0.035" in out and "delay" in out and "4,000" in out
    assert main(["cost", "--by", "deployment", "--home", home, "--json"]) == 0
    [item] = json.loads(capsys.readouterr().out)["items"]
    assert item["per_1000"] == pytest.approx(0.035)
    for by in ("run", "pipeline"):
        assert main(["cost", "--by", by, "--since", "30d", "--home", home]) == 0
    assert main(["cost", "waste", "--home", home]) == 0
    assert "idle" in capsys.readouterr().out


def test_cli_bad_input_exits_1_with_a_message(ws: Workspace, capsys):
    home = str(ws.home)
    assert main(["cost", "--by", "team", "--home", home]) == 1
    assert "Cannot group costs by 'team'" in capsys.readouterr().err
    assert main(["cost", "--since", "last week", "--home", home]) == 1
    err = capsys.readouterr().err
    assert "not a --since value" in err and "Traceback" not in err


def test_costs_on_every_backend(workspace: Workspace):
    """Run costs and storage bytes read the same on SQLite + local and PostgreSQL + S3."""
    import pyarrow as pa

    workspace.lake.ingest(pa.table({"a": list(range(100))}), table="t")
    with workspace.run("exp", capture=False) as run:
        run.log_artifact(b"y" * 5000, "blob.bin")
    report = cost_report(workspace, "run")
    assert [r.run_id for r in report.items] == [run.id]
    assert report.storage.lake_bytes > 0
    assert report.storage.artifact_bytes >= 5000
