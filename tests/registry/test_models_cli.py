"""``plinth models list|show|alias|diff|card|export``: tables, JSON, files and clean errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import plinth
from plinth.cli.main import app, main
from plinth.cli.output import console
from tests.registry.conftest import build_training, fit_logistic, frame_of


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Print tables 200 columns wide, so no cell is cut."""
    monkeypatch.setattr(console, "_width", 200)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A workspace with model 'clf' at versions 1 and 2 (a run behind each)."""
    folder = tmp_path_factory.mktemp("models") / "ws"
    with plinth.Workspace(settings=plinth.Settings(home=folder, user="tester")) as ws:
        training = build_training(ws)
        model = fit_logistic(training)
        inputs, _ = frame_of(training)
        for c, auc in ((1.0, 0.7), (0.5, 0.74)):
            with ws.run("exp", params={"C": c}, capture=False) as run:
                run.use(training)
                run.log_metric("auc", auc)
                run.log_model(model, "clf", features="svc", example=inputs.head(2))
    return str(folder)


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_list_and_show(home):
    result = invoke("models", "list", "--home", home)
    assert result.exit_code == 0, result.output
    assert "clf" in result.output and "2" in result.output
    data = json.loads(invoke("models", "list", "--home", home, "--json").output)
    assert data[0]["name"] == "clf" and data[0]["latest_version"] == 2
    result = invoke("models", "show", "clf:1", "--home", home)
    assert result.exit_code == 0, result.output
    for text in ("models:/clf/1", "sklearn", "training set", "svc v1", "x: float", "auc", "0.7",
                 "model.pkl", "versions of clf: 1, 2"):  # fmt: skip
        assert text in result.output, text
    data = json.loads(invoke("models", "show", "clf", "--home", home, "--json").output)
    assert data["uri"] == "models:/clf/2" and data["versions"] == [1, 2]
    assert data["signature"]["inputs"]["columns"][0]["name"] == "x"


def test_empty_list(tmp_path):
    result = invoke("models", "list", "--home", str(tmp_path / "empty"))
    assert result.exit_code == 0 and "No models yet" in result.output


def test_alias_set_move_remove_history(home):
    result = invoke("models", "alias", "set", "clf", "champion", "1", "--home", home)
    assert result.exit_code == 0, result.output
    assert "Set alias 'champion' of clf to version 1." in result.output
    result = invoke("models", "alias", "set", "clf", "champion", "1", "--home", home)
    assert "unchanged" in result.output
    result = invoke(
        "models", "alias", "set", "clf", "champion", "2", "--reason", "better auc", "--home", home
    )
    assert "Moved alias 'champion' of clf from version 1 to version 2." in result.output
    invoke("models", "alias", "set", "clf", "shadow", "1", "--home", home)
    result = invoke("models", "alias", "remove", "clf", "shadow", "--home", home)
    assert "Removed alias 'shadow' of clf (it pointed at version 1)." in result.output
    result = invoke("models", "alias", "history", "clf", "--home", home)
    assert result.exit_code == 0, result.output
    assert "better auc" in result.output and "remove" in result.output
    data = json.loads(invoke("models", "alias", "history", "clf", "champion", "--home", home,
                             "--json").output)  # fmt: skip
    assert [(e["action"], e["version"], e["previous_version"]) for e in data] == [
        ("set", 1, None),
        ("move", 2, 1),
    ]
    result = invoke("models", "alias", "history", "clf", "nothing", "--home", home)
    assert "No alias of clf has been set yet." in result.output


def test_diff(home):
    result = invoke("models", "diff", "clf:1", "clf:2", "--home", home)
    assert result.exit_code == 0, result.output
    assert "param.C" in result.output and "metric.auc" in result.output
    assert "data.table:obs" in result.output and "feature.service" in result.output
    data = json.loads(invoke("models", "diff", "clf:1", "clf:2", "--home", home, "--json").output)
    assert data["param"]["C"] == ["1.0", "0.5"] and "metric:auc" in data["differs"]


def test_card_markdown_json_and_file(home, tmp_path):
    result = invoke("models", "card", "clf:1", "--home", home)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("# Model card: clf version 1")
    assert "| obs | 0 | 120 |" in result.output
    data = json.loads(invoke("models", "card", "clf:1", "--json", "--home", home).output)
    assert data["training_data"]["tables"][0]["table"] == "obs"
    target = tmp_path / "card.md"
    result = invoke("models", "card", "clf", "--output", str(target), "--home", home)
    assert result.exit_code == 0 and f"to {target}" in result.output
    assert target.read_text().startswith("# Model card: clf version 2")
    target = tmp_path / "card.json"
    invoke("models", "card", "clf", "--json", "-o", str(target), "--home", home)
    assert json.loads(target.read_text())["model"]["version"] == 2


def test_export(home, tmp_path):
    result = invoke("models", "export", "clf:1", str(tmp_path / "out"), "--home", home)
    assert result.exit_code == 0, result.output
    assert "Exported clf version 1" in result.output
    assert (tmp_path / "out" / "manifest.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["models", "show", "nope"], "No model is registered under the name 'nope'."),
        (["models", "show", "clf:9"], "Model 'clf' has no version 9."),
        (["models", "show", "clf@gone"], "Model 'clf' has no alias 'gone'."),
        (["models", "card", "models:/"], "is not a valid model name"),
        (["models", "alias", "set", "clf", "champion", "9"], "Model 'clf' has no version 9."),
        (["models", "alias", "set", "nope", "champion", "1"], "No model is registered"),
        (["models", "alias", "set", "clf", "latest", "1"], "reserved"),
        (["models", "alias", "remove", "clf", "gone"], "has no alias 'gone'"),
        (["models", "diff", "clf:1", "clf:7"], "has no version 7"),
    ],
)
def test_errors_exit_1_without_traceback(home, capsys, args, message):
    code = main([*args, "--home", home])
    captured = capsys.readouterr()
    assert code == 1
    assert message in captured.err and "Error:" in captured.err
    assert "Traceback" not in captured.err + captured.out


def test_usage_errors_exit_2(home, capsys):
    assert main(["models", "alias", "set", "clf", "champion", "one", "--home", home]) == 2
    assert main(["models", "show", "--home", home]) == 2


def test_help_lists_the_commands():
    result = invoke("models", "--help")
    for name in ("list", "show", "alias", "diff", "card", "export"):
        assert name in result.output
