"""The run API: parameters, metrics, tags, artifacts, inputs, environment, ending and signals."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import select, text

import plinth
from plinth.catalog.models import (
    LineageEdge,
    MetricChunk,
    RunArtifact,
    RunMetric,
    RunParam,
    RunResource,
    RunTag,
)
from plinth.catalog.models import Run as RunRecord
from plinth.errors import ConfigError, ConflictError, NotFoundError
from plinth.tracking.points import unpack
from plinth.tracking.writer import MetricWriter
from tests.conftest import settings_env


@pytest.fixture
def ws(tmp_path: Path) -> plinth.Workspace:
    workspace = plinth.Workspace(tmp_path / "ws")
    yield workspace
    workspace.close()


def _record(ws: Any, run_id: str) -> RunRecord:
    with ws.catalog.session() as session:
        record = session.get(RunRecord, run_id)
        assert record is not None
        session.expunge(record)
        return record


def _points(ws: Any, run_id: str, key: str) -> list[tuple[int, float]]:
    with ws.catalog.session() as session:
        rows = session.execute(
            select(MetricChunk.steps, MetricChunk.values, MetricChunk.timestamps_us)
            .join(RunMetric, RunMetric.id == MetricChunk.metric_id)
            .where(RunMetric.run_id == run_id, RunMetric.key == key)
            .order_by(MetricChunk.id)
        ).all()
    series = unpack(rows)
    return list(zip(series.steps.tolist(), series.values.tolist(), strict=True))


def _series(ws: Any, run_id: str, key: str) -> RunMetric:
    with ws.catalog.session() as session:
        found = session.scalars(
            select(RunMetric).where(RunMetric.run_id == run_id, RunMetric.key == key)
        ).one()
        session.expunge(found)
        return found


# -- metrics -------------------------------------------------------------------------------


def test_metrics_are_written_with_steps_and_summaries(workspace: Any) -> None:
    with workspace.run("exp", capture=False) as run:
        for i in range(5):
            run.log_metric("loss", 1.0 / (i + 1))
        run.log_metrics({"auc": 0.6, "acc": 0.7}, step=10)
        run.log_metrics({"auc": 0.8, "acc": 0.9}, step=20)
        run.log_metric("auc", 0.5, step=15)  # logged late, an earlier step
        run.log_metrics({"loss": 0.1, "new": 1})  # default: past the keys' highest step
    assert [s for s, _ in _points(workspace, run.id, "loss")] == [0, 1, 2, 3, 4, 5]
    assert _points(workspace, run.id, "new") == [(5, 1.0)]
    auc = _series(workspace, run.id, "auc")
    assert (auc.last, auc.last_step, auc.min, auc.max, auc.count) == (0.8, 20, 0.5, 0.8, 3)
    assert _record(workspace, run.id).status == "finished"


def test_many_points_survive_batching_on_each_backend(workspace: Any) -> None:
    with workspace.run("exp", capture=False) as run:
        for i in range(30_000):
            run.log_metric("x", float(i), step=i)
    points = _points(workspace, run.id, "x")
    assert len(points) == 30_000
    assert points[-1] == (29_999, 29_999.0)


def test_interleaved_key_sets_keep_logging_order_and_default_steps(ws: plinth.Workspace) -> None:
    # One key in three key sets of different widths, interleaved within one writer batch,
    # and logged again at a step it already has: the points come back in logging order.
    with ws.run("exp", capture=False) as run:
        run.log_metric("a", 1.0, step=0)
        run.log_metrics({"a": 2.0, "b": 20.0}, step=1)
        run.log_metric("b", 21.0)  # one past b's last step: 2
        run.log_metrics({"c": 30.0, "a": 3.0, "d": 40.0}, step=1)
        run.log_metric("a", 4.0)  # one past the highest step of a's key sets: 2
        run.log_metrics({"a": 5.0, "b": 22.0})  # 3
    assert _points(ws, run.id, "a") == [(0, 1.0), (1, 2.0), (1, 3.0), (2, 4.0), (3, 5.0)]
    assert _points(ws, run.id, "b") == [(1, 20.0), (2, 21.0), (3, 22.0)]
    assert _series(ws, run.id, "a").last == 5.0 and _series(ws, run.id, "a").count == 5


def test_nan_and_infinities_are_stored_explicitly(workspace: Any) -> None:
    with workspace.run("exp", capture=False) as run:
        run.log_metric("loss", 1.0)
        run.log_metric("loss", float("nan"))
        run.log_metric("loss", float("inf"))
        run.log_metric("loss", float("-inf"))
    values = [v for _, v in _points(workspace, run.id, "loss")]
    assert values[0] == 1.0 and math.isnan(values[1])
    assert values[2] == math.inf and values[3] == -math.inf
    series = _series(workspace, run.id, "loss")
    assert series.count == 4 and series.min == -math.inf and series.max == math.inf


@pytest.mark.parametrize("value", ["0.5", b"1", None, [1.0], [1.0, 2.0], object(), 10**400])
def test_a_non_number_metric_is_refused(ws: plinth.Workspace, value: Any) -> None:
    with ws.run("exp", capture=False) as run:
        with pytest.raises(ConfigError, match="'loss'"):
            run.log_metric("loss", value)
        with pytest.raises(ConfigError, match="'loss'"):
            run.log_metrics({"auc": 0.5, "loss": value}, step=0)
        run.log_metrics({"auc": 0.5, "loss": 0.25}, step=0)
    assert _points(ws, run.id, "loss") == [(0, 0.25)]


def test_numpy_int_and_bool_values_are_accepted(ws: plinth.Workspace) -> None:
    import numpy as np

    with ws.run("exp", capture=False) as run:
        run.log_metric("a", np.float32(0.25))
        run.log_metric("a", 3)
        run.log_metric("a", True)
        run.log_metrics({"a": np.float64(0.5), "b": np.int64(7), "c": False})
    assert [v for _, v in _points(ws, run.id, "a")] == [0.25, 3.0, 1.0, 0.5]
    assert [v for _, v in _points(ws, run.id, "c")] == [0.0]


@pytest.mark.parametrize("step", ["7", 1.5, True, 2**63, -(2**63), [1]])
def test_a_bad_step_is_refused_at_the_call_and_the_other_points_are_kept(
    ws: plinth.Workspace, step: Any
) -> None:
    # A bad step used to reach the writer and fail its whole batch at the next flush, with
    # an error that blamed the database.
    with ws.run("exp", capture=False) as run:
        run.log_metric("a", 1.0, step=0)
        with pytest.raises(ConfigError, match="'a' got step"):
            run.log_metric("a", 2.0, step=step)
        with pytest.raises(ConfigError, match="'a' got step"):
            run.log_metrics({"a": 2.0, "b": 3.0}, step=step)
        run.log_metrics({"a": 4.0, "b": 5.0}, step=1)
    assert _points(ws, run.id, "a") == [(0, 1.0), (1, 4.0)]
    assert _points(ws, run.id, "b") == [(1, 5.0)]


def test_integer_scalars_are_steps(ws: plinth.Workspace) -> None:
    import numpy as np

    with ws.run("exp", capture=False) as run:
        run.log_metric("a", 1.0, step=np.int64(3))
        run.log_metrics({"a": 2.0}, step=np.int32(4))
    assert _points(ws, run.id, "a") == [(3, 1.0), (4, 2.0)]


@pytest.mark.parametrize("key", [1, "", "x" * 251, None])
def test_a_bad_metric_name_is_refused_every_time(ws: plinth.Workspace, key: Any) -> None:
    with ws.run("exp", capture=False) as run:
        for _ in range(2):  # the second call must not pass as an already seen key set
            with pytest.raises(ConfigError, match="Metric name"):
                run.log_metric(key, 1.0, step=0)
            with pytest.raises(ConfigError, match="Metric name"):
                run.log_metrics({"ok": 1.0, key: 2.0}, step=0)
            with pytest.raises(ConfigError, match="Metric name"):
                run.log_metrics({"ok": 1.0, key: 2.0})
        run.log_metrics({"ok": 3.0}, step=1)
    assert _points(ws, run.id, "ok") == [(1, 3.0)]


def test_logging_waits_instead_of_growing_without_bound(ws: plinth.Workspace) -> None:
    with ws.run("exp", capture=False) as run:
        run._writer.close()
        run._writer = MetricWriter(ws.catalog, run.id, interval=60, max_buffered=100)
        run._queue, run._queue_limit = run._writer.queue, 100
        for i in range(1_050):
            run.log_metric("x", i)
            run.log_metrics({"y": i})
        assert len(run._writer.queue) < 100  # a full queue was flushed by the caller
    assert len(_points(ws, run.id, "x")) == len(_points(ws, run.id, "y")) == 1_050


# -- parameters and tags -------------------------------------------------------------------


def test_params_are_fixed_once_logged(ws: plinth.Workspace) -> None:
    with ws.run("exp", params={"lr": 0.1, "opt": "adam", "layers": [64, 32]}, capture=False) as run:
        run.log_params({"lr": 0.1})  # the same value again is fine
        with pytest.raises(ConflictError, match=r"'lr'.*0\.1.*0\.2"):
            run.log_params({"lr": 0.2})
    with ws.catalog.session() as session:
        rows = {p.key: (p.value, p.number) for p in session.scalars(select(RunParam))}
    assert rows == {"lr": ("0.1", 0.1), "opt": ("adam", None), "layers": ("[64, 32]", None)}


def test_tags_may_change(ws: plinth.Workspace) -> None:
    with ws.run("exp", tags={"stage": "dev"}, capture=False) as run:
        run.set_tags({"stage": "prod", "team": "ops"})
    with ws.catalog.session() as session:
        tags = {t.key: t.value for t in session.scalars(select(RunTag))}
    assert tags == {"stage": "prod", "team": "ops"}


def test_a_bad_experiment_name_is_refused(ws: plinth.Workspace) -> None:
    with pytest.raises(ConfigError, match="experiment name"):
        ws.run("", capture=False)


# -- ending --------------------------------------------------------------------------------


def test_an_exception_marks_the_run_failed_with_its_traceback(ws: plinth.Workspace) -> None:
    with pytest.raises(ZeroDivisionError), ws.run("exp", capture=False) as run:
        run.log_metric("loss", 1.0)
        _ = 1 / 0
    record = _record(ws, run.id)
    assert record.status == "failed"
    assert record.error is not None and "ZeroDivisionError" in record.error
    assert record.ended_at is not None
    assert _points(ws, run.id, "loss") == [(0, 1.0)]
    with ws.catalog.session() as session:
        artifact = session.get(RunArtifact, (run.id, "traceback.txt"))
        assert artifact is not None
    assert b"1 / 0" in ws.artifacts.get_bytes(artifact.digest)


def test_resource_use_is_recorded(ws: plinth.Workspace) -> None:
    with ws.run("exp", capture=False) as run:
        sum(i * i for i in range(200_000))
    with ws.catalog.session() as session:
        usage = session.get(RunResource, (run.id, 0))
        assert usage is not None
        assert usage.wall_seconds > 0 and usage.cpu_seconds > 0
        assert usage.peak_rss_bytes > 10 * 2**20
        assert usage.gpu_count == 0 and usage.gpu_seconds == 0


# -- environment ---------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args],
        cwd=repo, check=True, capture_output=True,
    )  # fmt: skip


def test_the_environment_and_a_dirty_tree_are_captured(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    script = repo / "train.py"
    script.write_text("print('v1')\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "first")
    script.write_text("print('v2')\n")
    home = tmp_path / "ws"
    code = f"""
        import plinth
        ws = plinth.Workspace({str(home)!r})
        with ws.run("exp") as run:
            print(run.id)
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), "--epochs", "3"],
        cwd=repo, capture_output=True, text=True, check=True,
    )  # fmt: skip
    run_id = done.stdout.strip()
    ws = plinth.Workspace(home)
    env = _record(ws, run_id).environment
    assert env is not None
    assert env["git"]["dirty"] is True and len(env["git"]["commit"]) == 40
    assert env["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert "pyarrow" in env["packages"] and env["cpu"]["count"] >= 1
    assert env["arguments"] == ["--epochs", "3"]
    assert env["os"]["system"] and env["host"]
    with ws.catalog.session() as session:
        diff = session.get(RunArtifact, (run_id, "git.diff"))
        assert diff is not None
    assert b"+print('v2')" in ws.artifacts.get_bytes(diff.digest)
    ws.close()


# -- artifacts and inputs ------------------------------------------------------------------


def test_artifacts_of_each_kind(ws: plinth.Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "sub" / "b.txt").write_text("b")
    with ws.run("exp", capture=False) as run:
        run.log_artifact(folder / "a.txt")
        run.log_artifact(folder, "outputs")
        run.log_artifact({"auc": 0.7}, "eval.json")
        run.log_artifact(pa.table({"x": [1, 2]}), "preds.parquet")
        run.log_artifact(b"\x00\x01", "raw.bin")
        with pytest.raises(ConfigError, match="needs a name"):
            run.log_artifact({"a": 1})
        with pytest.raises(ConfigError, match="does not exist"):
            run.log_artifact(tmp_path / "missing.txt")
    with ws.catalog.session() as session:
        kinds = {a.name: a.kind for a in session.scalars(select(RunArtifact))}
    assert kinds == {
        "a.txt": "file",
        "outputs/a.txt": "file",
        "outputs/sub/b.txt": "file",
        "eval.json": "json",
        "preds.parquet": "parquet",
        "raw.bin": "bytes",
    }


def test_inputs_are_recorded_as_lineage(ws: plinth.Workspace) -> None:
    ws.lake.ingest(pa.table({"k": [1, 2]}), table="t")
    ws.lake.ingest(pa.table({"k": [3]}), table="t", mode="append")
    with ws.run("exp", capture=False) as run:
        assert run.use("t@0") == "table_version:t@0"
        assert run.use("t") == "table_version:t@1"
        with pytest.raises(NotFoundError):
            run.use("t@9")
        with pytest.raises(NotFoundError, match="training set"):
            run.use("training_set:ts_nope")
        with pytest.raises(ConfigError, match="run input"):
            run.use(42)
    with ws.catalog.session() as session:
        edges = {
            (e.source_id, e.relation)
            for e in session.scalars(select(LineageEdge).where(LineageEdge.target_id == run.id))
        }
    assert edges == {("t@0", "input_of"), ("t@1", "input_of")}


# -- processes: a crash, SIGTERM, a launcher's run -----------------------------------------

LOGGER = """
import os, sys, time, pathlib
import plinth
ws = plinth.Workspace()
counter = pathlib.Path(sys.argv[1])
logged = 0
with ws.run("exp", capture=False) as run:
    print(run.id, flush=True)
    try:
        while True:
            run.log_metric("x", float(logged), step=logged)
            logged += 1
            if logged % 1000 == 0:
                time.sleep(0.001)
            if sys.argv[2] == "crash" and logged == 25_000:
                raise RuntimeError("boom")
    finally:
        counter.write_text(str(logged))
"""


def _start_logger(tmp_path: Path, settings: Any, mode: str) -> tuple[subprocess.Popen, Path]:
    counter = tmp_path / "count.txt"
    process = subprocess.Popen(
        [sys.executable, "-c", LOGGER, str(counter), mode],
        env=settings_env(settings), stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    return process, counter


def test_sigterm_mid_run_loses_no_point(workspace: Any, tmp_path: Path) -> None:
    process, counter = _start_logger(tmp_path, workspace.settings, "loop")
    assert process.stdout is not None
    run_id = process.stdout.readline().strip()
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 143
    logged = int(counter.read_text())
    assert logged > 1000
    points = _points(workspace, run_id, "x")
    # The signal may land between log_metric returning and the script counting the point.
    assert logged <= len(points) <= logged + 1
    assert [s for s, _ in points] == list(range(len(points)))
    assert _record(workspace, run_id).status == "killed"


def test_a_crash_loses_no_point(ws: plinth.Workspace, tmp_path: Path) -> None:
    process, counter = _start_logger(tmp_path, ws.settings, "crash")
    assert process.stdout is not None
    run_id = process.stdout.readline().strip()
    assert process.wait(timeout=60) == 1
    assert int(counter.read_text()) == 25_000
    assert len(_points(ws, run_id, "x")) == 25_000
    record = _record(ws, run_id)
    assert record.status == "failed" and "boom" in (record.error or "")


def test_a_run_left_open_is_ended_at_exit(ws: plinth.Workspace) -> None:
    code = """
import plinth
run = plinth.Workspace().run("exp", capture=False)
run.log_metric("x", 1.0)
print(run.id)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], env=settings_env(ws.settings),
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    run_id = done.stdout.strip()
    assert _record(ws, run_id).status == "finished"
    assert _points(ws, run_id, "x") == [(0, 1.0)]


def test_processes_attach_to_the_launchers_run_by_rank(ws: plinth.Workspace) -> None:
    from plinth.tracking import RUN_ID_ENV, start_run

    owner = start_run(ws, "exp", launcher="torchrun", capture=False)
    code = """
import plinth
with plinth.Workspace().run("ignored", params={"lr": 0.1}) as run:
    run.log_metric("loss", 0.5)
"""
    for rank in (0, 1):
        env = {**settings_env(ws.settings), RUN_ID_ENV: owner.id, "RANK": str(rank)}
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
    assert _record(ws, owner.id).status == "running"  # the launcher ends it
    owner.end("finished")
    record = _record(ws, owner.id)
    assert record.status == "finished" and record.launcher == "torchrun"
    assert _points(ws, owner.id, "loss") == [(0, 0.5)]  # rank 1's point is not recorded
    with ws.catalog.session() as session:
        ranks = sorted(r.rank for r in session.scalars(select(RunResource)))
        params = session.execute(text("SELECT key, value FROM run_params")).all()
    assert ranks == [0, 1]
    assert params == [("lr", "0.1")]


def test_attaching_to_an_unknown_run_is_a_clear_error(
    ws: plinth.Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLINTH_RUN_ID", "run_missing")
    with pytest.raises(NotFoundError, match="run_missing"):
        ws.run("exp")


def test_a_parent_must_exist(ws: plinth.Workspace) -> None:
    with pytest.raises(NotFoundError, match="parent"):
        ws.run("exp", parent="run_nope", capture=False)


def test_the_metric_writer_is_not_left_running(ws: plinth.Workspace) -> None:
    with ws.run("exp", capture=False) as run:
        thread = run._writer._thread
    assert not thread.is_alive()
    assert os.environ.get("PLINTH_RUN_ID") is None


def test_a_run_names_the_table_versions_and_feature_definitions_it_used(
    ws: plinth.Workspace,
) -> None:
    from datetime import UTC, datetime

    from plinth import Entity, FeatureView

    when = pa.array([datetime(2024, 1, 1, tzinfo=UTC)] * 2, pa.timestamp("us", "UTC"))
    ws.lake.ingest(pa.table({"k": [1, 2], "ts": when, "v": [1.0, 2.0]}), table="obs")
    ws.lake.ingest(pa.table({"k": [1, 2], "ts": when}), table="spine")
    ws.features.apply(
        [FeatureView("fv", source="obs", entities=[Entity("k")], timestamp="ts", features=["v"])]
    )
    training = ws.features.historical("spine@0", ["fv"], timestamp="ts")
    with ws.run("exp", capture=False) as run:
        run.use(training)
    upstream = {(str(e.source), e.relation) for e in ws.runs.get(run.id).inputs}
    assert {
        (f"training_set:{training.id}", "input_of"),
        ("table_version:obs@0", "read_by"),
        ("table_version:spine@0", "spine_of"),
        ("feature_view:fv@1", "computed"),
    } <= upstream


def test_a_launched_script_names_the_experiment_unless_the_launcher_did(
    ws: plinth.Workspace,
) -> None:
    from plinth.tracking import RUN_ID_ENV, start_run
    from plinth.tracking.run import NAMED_BY_SCRIPT_ENV

    code = "import plinth\nplinth.Workspace().run('delay-model').end()\n"
    for flag, expected in (("1", "delay-model"), (None, "train")):
        owner = start_run(ws, "train", launcher="local", capture=False)
        env = {**settings_env(ws.settings), RUN_ID_ENV: owner.id}
        if flag:
            env[NAMED_BY_SCRIPT_ENV] = flag
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        owner.end()
        assert _record(ws, owner.id).experiment == expected
