"""``plinth train`` with the local launcher: success, failure, a plain script, SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import time

from sqlalchemy import select

from plinth.catalog.models import RunArtifact, RunMetric, RunParam, RunResource
from tests.conftest import settings_env
from tests.training.conftest import cli_command, runs

ATTACHED = """
    import sys
    import plinth
    from plinth.training import params

    p = params({"lr": 0.1, "epochs": 3, "opt": "sgd"})
    print("args", sys.argv[1:])
    print("to stderr", file=sys.stderr)
    with plinth.Workspace().run("demo", params=p) as run:
        for epoch in range(p["epochs"]):
            run.log_metric("loss", p["lr"] / (epoch + 1))
            print(f"epoch {epoch}", flush=True)
        if p["opt"] == "broken":
            raise ValueError("the optimiser 'broken' does not exist")
"""


def _params(ws, run_id):
    with ws.catalog.session() as session:
        return {
            p.key: p.value
            for p in session.scalars(select(RunParam).where(RunParam.run_id == run_id))
        }


def _artifacts(ws, run_id):
    with ws.catalog.session() as session:
        rows = session.scalars(select(RunArtifact).where(RunArtifact.run_id == run_id))
        return {a.name: a.digest for a in rows}


def _resources(ws, run_id):
    with ws.catalog.session() as session:
        rows = session.scalars(select(RunResource).where(RunResource.run_id == run_id))
        return sorted(r.rank for r in rows)


def test_train_finishes_with_params_and_streams_output(ws, script, plinth_cli):
    path = script("attached.py", ATTACHED)
    done = plinth_cli("train", str(path), "one", "--two", "--param", "lr=0.5", "-p", "epochs=2")
    assert done.returncode == 0, done.stderr
    assert "args ['one', '--two']" in done.stdout
    assert "epoch 0\nepoch 1\n" in done.stdout
    assert "to stderr" in done.stderr and "finished" in done.stderr
    [record] = runs(ws)
    assert (record.status, record.launcher, record.experiment) == (
        "finished",
        "local",
        "demo",
    )  # named by the script
    assert record.arguments == ["one", "--two"] and record.ended_at is not None
    assert record.requested == {"cpus": 1, "gpus": 0}
    assert _params(ws, record.id) == {"lr": "0.5", "epochs": "2", "opt": "sgd"}
    with ws.catalog.session() as session:
        metric = session.scalar(select(RunMetric).where(RunMetric.run_id == record.id))
        assert (metric.key, metric.count, metric.last) == ("loss", 2, 0.25)
    assert _resources(ws, record.id) == [0]
    assert "output.log" not in _artifacts(ws, record.id)


def test_script_that_raises_fails_the_run(ws, script, plinth_cli):
    path = script("attached.py", ATTACHED)
    done = plinth_cli("train", str(path), "--param", "opt=broken", "--experiment", "errors")
    assert done.returncode == 1
    assert "ValueError: the optimiser 'broken' does not exist" in done.stderr
    [record] = runs(ws)
    assert (record.status, record.experiment) == ("failed", "errors")
    assert record.error == "ValueError: the optimiser 'broken' does not exist"
    artifacts = _artifacts(ws, record.id)
    assert {"traceback.txt", "output.log"} <= set(artifacts)
    traceback = ws.artifacts.get_bytes(artifacts["traceback.txt"]).decode()
    assert "raise ValueError" in traceback
    output = ws.artifacts.get_bytes(artifacts["output.log"]).decode()
    assert "epoch 2" in output and "Traceback" in output
    assert _resources(ws, record.id) == [0]


def test_plain_script_is_tracked_by_the_launcher(ws, script, plinth_cli):
    ok = script("plain.py", "import sys; print('plain', sys.argv[1:])\n")
    done = plinth_cli("train", str(ok), "--param", "lr=0.1", "x")
    assert done.returncode == 0 and "plain ['x']" in done.stdout
    bad = script("bad.py", "import sys; print('going down'); sys.exit(3)\n")
    done = plinth_cli("train", str(bad))
    assert done.returncode == 3
    good, failed = runs(ws)
    assert good.status == "finished" and _params(ws, good.id) == {"lr": "0.1"}
    assert (failed.status, failed.error) == ("failed", "exit code 3")
    log = _artifacts(ws, failed.id)["output.log"]
    assert ws.artifacts.get_bytes(log) == b"going down\n"
    for record in (good, failed):  # the launcher measured the child (wait4)
        with ws.catalog.session() as session:
            row = session.get(RunResource, (record.id, 0))
            assert row.wall_seconds > 0 and row.peak_rss_bytes > 0


LOOP = """
    import time
    import plinth

    with plinth.Workspace().run("loop") as run:
        for step in range(100_000):
            run.log_metric("x", float(step), step=step)
            print(f"logged {step}", flush=True)
            time.sleep(0.005)
"""


def test_sigterm_stops_the_script_and_keeps_every_point(ws, settings, script, tmp_path):
    path = script("loop.py", LOOP)
    process = subprocess.Popen(
        cli_command("train", str(path)),
        env=settings_env(settings),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    last = -1
    assert process.stdout is not None
    for line in process.stdout:  # the output arrives while the script runs
        last = int(line.split()[1])
        if last >= 40:
            break
    process.send_signal(signal.SIGTERM)
    rest, err = process.communicate(timeout=60)
    for line in rest.splitlines():
        last = int(line.split()[1])
    assert process.returncode == 143, err
    assert "killed" in err
    [record] = runs(ws)
    assert record.status == "killed" and record.ended_at is not None
    with ws.catalog.session() as session:
        metric = session.scalar(select(RunMetric).where(RunMetric.run_id == record.id))
        assert metric.count == last + 1 and metric.last == float(last)
    assert _resources(ws, record.id) == [0]
    time.sleep(0.2)
    found = subprocess.run(["pgrep", "-f", str(path)], capture_output=True, text=True)
    assert found.stdout.strip() == ""  # the script's process is gone
