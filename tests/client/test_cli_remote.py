"""The CLI in remote mode: with PLINTH_URL and PLINTH_TOKEN set, the commands that work
through the server print exactly what they print over the local catalog; the others exit 1
saying they need a local catalog."""

from __future__ import annotations

import pytest

from plinth.cli.main import main
from tests.client.conftest import World


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def remote_env(monkeypatch: pytest.MonkeyPatch, world: World):
    """A function switching the environment between remote mode and local."""
    assert world.server is not None

    def switch(on: bool) -> None:
        if on:
            monkeypatch.setenv("PLINTH_URL", world.server.url)
            monkeypatch.setenv("PLINTH_TOKEN", world.admin_token)
        else:
            monkeypatch.delenv("PLINTH_URL", raising=False)
            monkeypatch.delenv("PLINTH_TOKEN", raising=False)

    return switch


def both(capsys, remote_env, world: World, *args: str) -> tuple[str, str]:
    """The output of one command run locally (--home) and then through the server."""
    remote_env(False)
    code, local, err = cli(capsys, *args, "--home", str(world.settings.home))
    assert code == 0, err
    remote_env(True)
    code, remote, err = cli(capsys, *args)
    assert code == 0, err
    return local, remote


@pytest.mark.parametrize(
    "args",
    [
        ("runs", "list"),
        ("runs", "list", "--limit", "2", "--offset", "1", "--sort", "metrics.auc desc"),
        ("runs", "list", "--filter", "experiment = 'exp-a'", "--json"),
        ("models", "list"),
        ("models", "list", "--json"),
        ("models", "show", "clf@champion"),
        ("models", "show", "clf"),
        ("models", "show", "clf:2", "--json"),
        ("monitor", "alerts"),
        ("monitor", "alerts", "--model", "clf", "--rule", "hot", "--json"),
        ("audit", "list", "--resource", "model:clf"),
        ("audit", "list", "--limit", "5", "--json"),
        ("audit", "verify"),
        ("lineage", "clf@champion"),
        ("lineage", "flights@0", "--down", "--json"),
        ("tables",),
        ("tables", "--json"),
        ("table", "show", "flights"),
        ("table", "show", "flights", "--version", "0", "--json"),
        ("table", "history", "flights"),
        ("table", "history", "flights", "--json"),
        ("profile", "flights"),
        ("profile", "flights", "--version", "0", "--json"),
        ("features", "show", "delays"),
        ("features", "show", "delays", "--json"),
        ("features", "list"),
        ("features", "list", "--json"),
        ("pipeline", "runs"),
        ("pipeline", "runs", "--pipeline", "simple", "--limit", "5", "--json"),
        ("deploy", "list"),
        ("deploy", "list", "--json"),
        ("deploy", "history", "clf"),
        ("deploy", "history", "clf", "--json"),
        ("models", "card", "clf:1"),
        ("models", "card", "clf@champion", "--json"),
    ],
    ids=lambda a: " ".join(a),
)
def test_remote_commands_print_what_local_ones_print(capsys, remote_env, world, args):
    local, remote = both(capsys, remote_env, world, *args)
    assert remote == local
    assert remote.strip()


def test_runs_show_prints_the_same_detail(capsys, remote_env, world):
    local, remote = both(capsys, remote_env, world, "runs", "show", world.run_ids[2])
    assert remote == local and world.run_ids[2] in remote


def test_alias_set_moves_the_alias_through_the_server(capsys, remote_env, world):
    remote_env(True)
    code, out, err = cli(capsys, "models", "alias", "set", "clf", "cli", "2", "-r", "try")
    assert code == 0, err
    assert out.strip() == "Set alias 'cli' of clf to version 2."
    assert world.ws.models.list()[0].aliases["cli"] == 2
    code, out, _ = cli(capsys, "models", "alias", "set", "clf", "cli", "2")
    assert out.strip() == "Alias 'cli' of clf already points at that version; unchanged."
    world.ws.models.remove_alias("clf", "cli")


def test_remote_errors_are_the_local_errors(capsys, remote_env, world):
    remote_env(True)
    code, _, err = cli(capsys, "runs", "show", "run_nope")
    assert code == 1 and "No run has the id 'run_nope'" in err
    code, _, err = cli(capsys, "models", "show", "nope")
    assert code == 1 and "No model is registered under the name 'nope'" in err


def test_a_viewer_token_cannot_move_an_alias(capsys, remote_env, world, monkeypatch):
    remote_env(True)
    monkeypatch.setenv("PLINTH_TOKEN", world.viewer_token)
    code, _, err = cli(capsys, "models", "alias", "set", "clf", "champion", "2")
    assert code == 1 and "may not models:promote" in err


@pytest.mark.parametrize(
    "args",
    [
        ("features", "materialize"),
        ("pipeline", "run", "prun_x"),
        ("server",),
    ],
    ids=lambda a: " ".join(a),
)
def test_local_only_commands_exit_1_in_remote_mode(capsys, remote_env, args):
    remote_env(True)
    code, out, err = cli(capsys, *args)
    assert code == 1 and not out
    text = " ".join(err.split())
    assert f"'plinth {' '.join(a for a in args if a != 'prun_x')}'" in text
    assert "works on a local catalog only; unset PLINTH_URL" in text


def test_help_and_an_anchor_in_remote_mode(capsys, remote_env, tmp_path):
    remote_env(True)
    code, out, _ = cli(capsys, "tables", "--help")
    assert code == 0 and "Usage" in out
    anchor = tmp_path / "head.json"
    anchor.write_text('{"seq": 1, "hash": "x"}')
    code, _, err = cli(capsys, "audit", "verify", "--anchor", str(anchor))
    assert code == 1 and "works on a local catalog only" in " ".join(err.split())


def undated(text: str) -> str:
    """A chart's text without the time it was made at."""
    import re

    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "<time>", text)


def test_runs_compare_prints_the_same_table(capsys, remote_env, world):
    ids = world.run_ids[:3]
    local, remote = both(capsys, remote_env, world, "runs", "compare", *ids)
    assert remote == local and "params.lr" in remote
    local, remote = both(capsys, remote_env, world, "runs", "compare", *ids, "--json")
    assert remote == local


def test_runs_plot_writes_the_same_chart(capsys, remote_env, world, tmp_path):
    ids = world.run_ids[:2]
    remote_env(False)
    home = str(world.settings.home)
    code, _, err = cli(capsys, "runs", "plot", *ids, "-m", "loss", "-o", str(tmp_path / "l.html"),
                       "--home", home)  # fmt: skip
    assert code == 0, err
    remote_env(True)
    code, out, err = cli(capsys, "runs", "plot", *ids, "-m", "loss", "-o", str(tmp_path / "r.html"))
    assert code == 0, err and "Wrote" in out
    local, remote = (tmp_path / "l.html").read_text(), (tmp_path / "r.html").read_text()
    assert undated(remote) == undated(local) and ids[0] in remote


def test_pipeline_show_and_monitor_alert_print_the_same(capsys, remote_env, world):
    from plinth.monitoring.alerts import AlertManager

    run_id = world.ws.pipelines.runs(limit=1)[0].id
    for extra in ((), ("--json",)):
        local, remote = both(capsys, remote_env, world, "pipeline", "show", run_id, *extra)
        assert remote == local and run_id in remote
    alert_id = str(AlertManager(world.ws).alerts()[0].id)
    for extra in ((), ("--json",)):
        local, remote = both(capsys, remote_env, world, "monitor", "alert", alert_id, *extra)
        assert remote == local and "hot" in remote


def test_monitor_drift_fails_the_same_way_and_refuses_local_options(capsys, remote_env, world):
    remote_env(False)
    home = str(world.settings.home)
    code, _, local = cli(capsys, "monitor", "drift", "clf@champion", "--home", home)
    assert code == 1
    remote_env(True)
    code, _, remote = cli(capsys, "monitor", "drift", "clf@champion")
    assert code == 1 and remote == local and "Traceback" not in remote
    code, _, err = cli(capsys, "monitor", "drift", "clf@champion", "--reference", "flights")
    assert code == 1 and "uses the training set as the reference" in " ".join(err.split())


def test_alias_remove_through_the_server_and_a_viewer_refused(
    capsys, remote_env, world, monkeypatch
):
    world.ws.models.set_alias("clf", "gone", 2)
    remote_env(True)
    monkeypatch.setenv("PLINTH_TOKEN", world.viewer_token)
    code, out, err = cli(capsys, "models", "alias", "remove", "clf", "gone")
    assert code == 1 and not out and "may not models:promote" in err
    assert "Traceback" not in err and world.ws.models.list()[0].aliases["gone"] == 2
    monkeypatch.setenv("PLINTH_TOKEN", world.admin_token)
    code, out, err = cli(capsys, "models", "alias", "remove", "clf", "gone", "-r", "done")
    assert code == 0, err
    remote_env(False)
    home = str(world.settings.home)
    world.ws.models.set_alias("clf", "gone", 2)
    code, local, _ = cli(capsys, "models", "alias", "remove", "clf", "gone", "--home", home)
    assert code == 0 and out == local and "gone" in out
    assert "gone" not in world.ws.models.list()[0].aliases
    assert world.ws.models.alias_history("clf", "gone")[1].reason == "done"


@pytest.mark.parametrize(
    "args",
    [
        ("cost",),
        ("cost", "--by", "run"),
        ("cost", "--by", "pipeline", "--since", "30d"),
        ("cost", "--by", "deployment", "--since", "2020-01-01"),
        ("cost", "--by", "model", "--json"),
        ("cost", "--by", "run", "--since", "1d", "--json"),
    ],
    ids=lambda a: " ".join(a),
)
def test_cost_prints_the_same_report(capsys, remote_env, world, monkeypatch, args):
    """The window ends now: with the clock held still (the server runs in this process), the
    local and the remote report cover the same window to the microsecond."""
    from plinth._core.clock import utcnow
    from plinth.cost import accounting

    now = utcnow()
    monkeypatch.setattr(accounting, "utcnow", lambda: now)
    local, remote = both(capsys, remote_env, world, *args)
    assert remote == local
    assert "total" in remote or "total_usd" in remote


def test_cost_errors_are_the_local_errors(capsys, remote_env, world):
    remote_env(True)
    code, out, err = cli(capsys, "cost", "--by", "team")
    assert code == 1 and not out and "Cannot group costs by 'team'" in err
    code, out, err = cli(capsys, "cost", "--since", "yesterday")
    assert code == 1 and not out and "'yesterday' is not a --since value" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "args",
    [
        ("quality", "flights"),
        ("quality", "flights", "--version", "0", "--against", "0"),
        ("quality", "airports"),
    ],
    ids=lambda a: " ".join(a),
)
def test_quality_prints_the_same_summary(capsys, remote_env, world, args):
    local, remote = both(capsys, remote_env, world, *args)
    assert remote == local and "volume" in remote


def test_quality_html_report_and_errors_through_the_server(capsys, remote_env, world, tmp_path):
    remote_env(False)
    home = str(world.settings.home)
    code, _, err = cli(capsys, "quality", "flights", "--html", str(tmp_path / "l.html"),
                       "--home", home)  # fmt: skip
    assert code == 0, err
    remote_env(True)
    code, out, err = cli(capsys, "quality", "flights", "--html", str(tmp_path / "r.html"))
    assert code == 0, err and "Report written" in out
    local, remote = (tmp_path / "l.html").read_text(), (tmp_path / "r.html").read_text()
    assert undated(remote) == undated(local) and "flights@1" in remote
    code, out, err = cli(capsys, "quality", "nope")
    assert code == 1 and not out and "Table 'nope' does not exist" in err
    assert "Traceback" not in err


def test_pipeline_logs_print_the_same(capsys, remote_env, world):
    run_id = world.ws.pipelines.runs(limit=1)[0].id
    local, remote = both(capsys, remote_env, world, "pipeline", "logs", run_id, "numbers")
    assert remote == local and "making 5 numbers" in remote
    local, remote = both(capsys, remote_env, world, "pipeline", "logs", run_id, "total")
    assert remote == local and "printed nothing" in remote
    code, out, err = cli(capsys, "pipeline", "logs", run_id, "nope")
    assert code == 1 and not out and "has no step 'nope'" in err and "Traceback" not in err
