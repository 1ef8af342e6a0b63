"""Training scripts through the server: with PLINTH_URL set, ``plinth.Workspace().run(...)``
and ``plinth train`` record their runs on the server (params, metrics, artifacts, inputs,
resource use), a viewer token is refused, and an artifact over the limit answers 413."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

import plinth
from plinth.cli.main import main
from plinth.client import RemoteClient, RemoteRun
from tests.client.conftest import World


@pytest.fixture
def remote(monkeypatch: pytest.MonkeyPatch, world: World, tmp_path: Path) -> Path:
    """Remote mode as an admin, with an empty local workspace that must stay untouched."""
    assert world.server is not None
    local = tmp_path / "local-ws"
    monkeypatch.setenv("PLINTH_URL", world.server.url)
    monkeypatch.setenv("PLINTH_TOKEN", world.admin_token)
    monkeypatch.setenv("PLINTH_HOME", str(local))
    monkeypatch.delenv("PLINTH_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    return local


@pytest.fixture
def server_client(world: World):
    assert world.server is not None
    with RemoteClient(world.server.url, world.admin_token) as made:
        yield made


def test_a_script_run_is_recorded_on_the_server(remote, server_client, tmp_path):
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"w" * 64)
    ws = plinth.Workspace()
    with ws.run("remote-script", params={"lr": 0.1, "depth": 6}, tags={"team": "ops"}) as run:
        assert isinstance(run, RemoteRun)
        for step in range(30):
            run.log_metric("loss", 1 / (step + 1))
        run.log_metrics({"auc": 0.7, "f1": 0.5}, step=3)
        run.log_artifact(weights)
        run.log_artifact({"auc": 0.7}, name="eval.json")
        run.use("flights@1")
        run.flush()
    detail = server_client.run(run.id)
    assert detail.status == "finished" and detail.experiment == "remote-script"
    assert detail.params == {"lr": "0.1", "depth": "6"} and detail.tags == {"team": "ops"}
    assert detail.metric_summaries["loss"].count == 30 and detail.metrics["auc"] == 0.7
    assert {a.name for a in detail.artifacts} == {"model.bin", "eval.json"}
    assert "table_version:flights@1" in {str(e.source) for e in detail.inputs}
    assert [r.rank for r in detail.resources] == [0]
    # The client's environment is recorded, as a local run records its own.
    import platform

    assert detail.environment is not None
    assert detail.environment["python"]["version"] == platform.python_version()
    assert "numpy" in detail.environment["packages"] and "git" in detail.environment
    assert not remote.exists()  # nothing went to a local catalog


def test_a_raising_script_block_fails_the_run_on_the_server(remote, server_client):
    ws = plinth.Workspace()
    with pytest.raises(RuntimeError, match="diverged"), ws.run("remote-fail") as run:
        run.log_metric("loss", float("inf"))
        raise RuntimeError("diverged")
    detail = server_client.run(run.id)
    assert (detail.status, detail.error) == ("failed", "RuntimeError: diverged")
    assert [a.name for a in detail.artifacts] == ["traceback.txt"]


def test_a_viewer_token_is_refused_with_a_clear_error(remote, monkeypatch, world):
    from plinth.governance.access import Forbidden

    monkeypatch.setenv("PLINTH_TOKEN", world.viewer_token)
    with pytest.raises(Forbidden, match="runs:write"):
        plinth.Workspace().run("viewer-run")


def test_an_environment_over_the_limit_answers_422_with_json(remote, world):
    import httpx

    answer = httpx.post(
        f"{world.server.url}/api/v1/runs",
        json={"experiment": "big-env", "environment": {"packages": {"x": "y" * 300_000}}},
        headers={"Authorization": f"Bearer {world.admin_token}"},
    )
    assert answer.status_code == 422
    assert "256 KiB" in answer.text


def test_an_artifact_over_the_limit_answers_413_with_json(remote, monkeypatch, world):
    import httpx

    from plinth.errors import PlinthError
    from plinth.server.api import runs as runs_api

    monkeypatch.setattr(runs_api, "MAX_ARTIFACT_BYTES", 1000)
    with plinth.Workspace().run("big-artifact") as run:
        run.log_artifact(b"x" * 1000, "fits.bin")
        with pytest.raises(PlinthError, match="larger than the server accepts"):
            run.log_artifact(b"x" * 1001, "too-big.bin")
        answer = httpx.post(
            f"{world.server.url}/api/v1/runs/{run.id}/artifacts/raw.bin",
            content=b"y" * 5000,
            headers={"Authorization": f"Bearer {world.admin_token}"},
        )
        assert answer.status_code == 413
        assert answer.json()["error"]["type"] == "PayloadTooLarge"
        streamed = httpx.post(  # no Content-Length: refused while reading
            f"{world.server.url}/api/v1/runs/{run.id}/artifacts/raw.bin",
            content=iter([b"z" * 600, b"z" * 600]),
            headers={"Authorization": f"Bearer {world.admin_token}"},
        )
        assert streamed.status_code == 413 and "error" in streamed.json()
    with RemoteClient(world.server.url, world.admin_token) as client:
        assert [a.name for a in client.run(run.id).artifacts] == ["fits.bin"]


def test_the_new_routes_are_in_the_openapi_spec(world):
    import httpx

    spec = httpx.get(f"{world.server.url}/openapi.json").json()
    upload = spec["paths"]["/api/v1/runs/{run_id}/artifacts/{name}"]["post"]
    assert "application/octet-stream" in upload["requestBody"]["content"]
    assert "post" in spec["paths"]["/api/v1/runs/{run_id}/inputs"]
    assert "usage" in spec["components"]["schemas"]["RunEnd"]["properties"]


SCRIPT = """
    import sys
    import plinth

    ws = plinth.Workspace()
    with ws.run("named-by-script", params={"lr": 0.5}) as run:
        for step in range(5):
            run.log_metric("loss", 1 / (step + 1))
        run.log_artifact(b"weights", "model.bin")
        run.use("flights@1")
        if "--fail" in sys.argv:
            raise ValueError("bad batch")
    print("trained", run.id)
"""


def _train(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["train", *args])
    return code, capsys.readouterr().err


def _run_id(err: str) -> str:
    found = re.search(r"Run (run_[A-Za-z0-9_]+) ", err)
    assert found, err
    return found.group(1)


def test_plinth_train_records_the_run_on_the_server(remote, server_client, tmp_path, capsys):
    script = tmp_path / "fit.py"
    script.write_text(textwrap.dedent(SCRIPT))
    code, err = _train(capsys, str(script), "--param", "epochs=3", "--experiment", "remote-train")
    assert code == 0, err
    detail = server_client.run(_run_id(err))
    assert (detail.status, detail.launcher, detail.experiment) == (
        "finished", "local", "remote-train"
    )  # fmt: skip
    assert detail.entry_point is not None and detail.entry_point.endswith("fit.py")
    assert detail.params == {"lr": "0.5", "epochs": "3"}
    assert detail.metric_summaries["loss"].count == 5
    assert [a.name for a in detail.artifacts] == ["model.bin"]
    assert "table_version:flights@1" in {str(e.source) for e in detail.inputs}
    assert [r.rank for r in detail.resources] == [0]  # the script's own use
    assert detail.resources[0].cpu_seconds > 0
    assert detail.environment is not None and detail.environment["entry_point"].endswith("fit.py")
    assert not remote.exists()


def test_without_experiment_the_scripts_ws_run_names_it(remote, server_client, tmp_path, capsys):
    script = tmp_path / "fit.py"
    script.write_text(textwrap.dedent(SCRIPT))
    code, err = _train(capsys, str(script))
    assert code == 0, err
    detail = server_client.run(_run_id(err))
    assert (detail.status, detail.experiment) == ("finished", "named-by-script")


def test_plinth_train_of_a_failing_script_fails_the_run(remote, server_client, tmp_path, capsys):
    script = tmp_path / "fit.py"
    script.write_text(textwrap.dedent(SCRIPT))
    code, err = _train(capsys, str(script), "--", "--fail")
    assert code == 1, err
    detail = server_client.run(_run_id(err))
    assert (detail.status, detail.error) == ("failed", "ValueError: bad batch")
    assert detail.ended_at is not None
    assert {a.name for a in detail.artifacts} == {"model.bin", "traceback.txt", "output.log"}


NO_RUN_SCRIPT = """
    import os

    sum(i * i for i in range(300_000))  # some CPU time on every worker
    print("rank", os.environ["RANK"], "done without a run")
"""


@pytest.mark.ray
@pytest.mark.slow
def test_the_ray_launcher_records_its_run_on_the_server(
    remote, server_client, ray_address, tmp_path, capsys
):
    pytest.importorskip("torch")
    from tests.training.conftest import MLP

    code, err = _train(
        capsys, str(MLP), "--ray", ray_address, "--workers", "2", "-p", "epochs=2",
        "--experiment", "remote-ray",
    )  # fmt: skip
    assert code == 0, err[-3000:]
    detail = server_client.run(_run_id(err))
    assert (detail.status, detail.launcher, detail.experiment) == (
        "finished", "ray", "remote-ray"
    )  # fmt: skip
    assert detail.requested is not None and detail.requested["workers"] == 2
    assert detail.metric_summaries["val_loss"].count == 2  # rank 0 logs the reduced loss
    assert "model.pt" in {a.name for a in detail.artifacts}
    assert sorted(r.rank for r in detail.resources) == [0, 1]
    # A script without ws.run: each worker's use is still recorded, through the server.
    script = tmp_path / "plain.py"
    script.write_text(textwrap.dedent(NO_RUN_SCRIPT))
    code, err = _train(capsys, str(script), "--ray", ray_address, "--workers", "2")
    assert code == 0, err[-3000:]
    plain = server_client.run(_run_id(err))
    assert (plain.status, plain.launcher) == ("finished", "ray")
    assert sorted(r.rank for r in plain.resources) == [0, 1]
    assert all(r.cpu_seconds > 0 for r in plain.resources)


DDP_SCRIPT = """
    import os
    import sys
    import time

    import plinth

    rank = int(os.environ["RANK"])
    ws = plinth.Workspace()
    with ws.run("ddp", params={"lr": 0.5}) as run:
        for step in range(5):
            run.log_metric("loss", 1 / (step + 1))
        run.log_artifact(b"weights", "model.bin")
        run.set_tags({"rank_seen": str(rank)})
        sum(i * i for i in range(200_000))  # some CPU time on every rank
        if "--fail" in sys.argv:
            if rank == 1:
                raise ValueError("rank 1 diverged")
            time.sleep(2)  # rank 0 ends after rank 1 failed the run
    print("rank", rank, "done")
"""


@pytest.mark.slow
def test_plinth_train_nproc_records_every_rank_on_the_server(
    remote, server_client, tmp_path, capsys
):
    pytest.importorskip("torch")
    script = tmp_path / "ddp.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT))
    code, err = _train(capsys, str(script), "--nproc", "2", "--experiment", "remote-ddp")
    assert code == 0, err
    detail = server_client.run(_run_id(err))
    assert (detail.status, detail.launcher, detail.experiment) == (
        "finished", "torchrun", "remote-ddp"
    )  # fmt: skip
    assert detail.requested is not None and detail.requested["nproc"] == 2
    # Only rank 0 logs: one series, one artifact, its tags; every rank records its usage.
    assert detail.metric_summaries["loss"].count == 5 and detail.params == {"lr": "0.5"}
    assert [a.name for a in detail.artifacts] == ["model.bin"]
    assert detail.tags == {"rank_seen": "0"}
    assert sorted(r.rank for r in detail.resources) == [0, 1]
    assert all(r.cpu_seconds > 0 for r in detail.resources)
    assert not remote.exists()
    code, err = _train(capsys, str(script), "--nproc", "2", "--", "--fail")
    assert code != 0
    failed = server_client.run(_run_id(err))
    assert failed.status in ("failed", "killed") and failed.ended_at is not None
    assert sorted(r.rank for r in failed.resources) == [0, 1]  # rank 0 ended after the failure
    # torchrun stops rank 0 once rank 1 failed: the run ends failed or killed, as locally,
    # and rank 1's own traceback stays out (only rank 0 uploads).
    assert {"model.bin", "output.log"} <= {a.name for a in failed.artifacts}


TUNE_SCRIPT = """
    import plinth
    from plinth.training import params

    p = params({"x": 0.0})
    with plinth.Workspace().run("quad", params=p) as run:
        run.log_metric("score", (p["x"] - 0.3) ** 2)
"""


def _tune_files(tmp_path: Path) -> tuple[Path, Path]:
    script = tmp_path / "quad.py"
    script.write_text(textwrap.dedent(TUNE_SCRIPT))
    space = tmp_path / "space.yaml"
    space.write_text("x: {type: float, low: -1.0, high: 1.0}\n")
    return script, space


@pytest.mark.parametrize(
    "on_ray", [False, pytest.param(True, marks=[pytest.mark.ray, pytest.mark.slow])]
)
def test_plinth_tune_records_the_search_on_the_server(
    on_ray, remote, server_client, tmp_path, capsys, request
):
    import json

    script, space = _tune_files(tmp_path)
    # On Ray each trial is a Ray task that launches its script in remote mode on its node.
    extra = ["--ray", request.getfixturevalue("ray_address"), "--parallel", "2"] if on_ray else []
    capsys.readouterr()
    code = main(["tune", str(script), "--space", str(space), "--trials", "3", "--metric",
                 "score", "--seed", "1", "--experiment", "remote-tune", "--json",
                 *extra])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    parent = server_client.run(result["parent"])
    assert (parent.launcher, parent.status, parent.experiment) == (
        "tune",
        "finished",
        "remote-tune",
    )
    assert "space.yaml" in {a.name for a in parent.artifacts}
    children = [server_client.run(t["run_id"]) for t in result["trials"]]
    assert sorted(parent.children) == sorted(c.id for c in children) and len(children) == 3
    assert {(c.parent_id, c.status, c.launcher) for c in children} == {
        (parent.id, "finished", "local")
    }
    assert sorted(int(c.tags["trial"]) for c in children) == [0, 1, 2]
    values = {c.id: c.metrics["score"] for c in children}
    best = min(values, key=lambda run_id: values[run_id])
    assert result["best"]["run_id"] == best and result["best"]["value"] == values[best]
    assert [c.id for c in children if server_client.run(c.id).tags.get("best") == "true"] == [best]
    assert parent.tags["best_run"] == best and float(parent.tags["best_value"]) == values[best]
    assert [r.rank for r in parent.resources] == [0]
    assert not remote.exists()  # nothing went to a local catalog


def test_plinth_tune_is_refused_for_a_viewer(remote, monkeypatch, world, tmp_path, capsys):
    script, space = _tune_files(tmp_path)
    args = ["tune", str(script), "--space", str(space), "--trials", "1", "--metric", "score"]
    capsys.readouterr()
    monkeypatch.setenv("PLINTH_TOKEN", world.viewer_token)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "runs:write" in err and "Traceback" not in err
    assert not remote.exists()
