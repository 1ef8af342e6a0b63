"""Parameters, memory sizes, search spaces and launcher options: parsed, checked, explained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plinth.cli.main import main
from plinth.cli.train_cmds import fill_ray_address
from plinth.errors import ConfigError
from plinth.training import params
from plinth.training.launcher import LaunchSpec, child_env, parse_memory, workspace_env
from plinth.training.parameters import PARAMS_ENV, parse_assignments
from plinth.training.space import load_space, parse_space


def test_assignments_parse_json_values_and_fall_back_to_text():
    values = parse_assignments(["lr=1e-3", "depth=4", "opt=adam", "flag=true", "tag=a=b"])
    assert values == {"lr": 0.001, "depth": 4, "opt": "adam", "flag": True, "tag": "a=b"}
    with pytest.raises(ConfigError, match="not a parameter assignment"):
        parse_assignments(["lr"])
    with pytest.raises(ConfigError, match="not a parameter assignment"):
        parse_assignments(["=3"])


def test_params_applies_overrides_in_the_defaults_types(monkeypatch):
    defaults = {"lr": 0.1, "epochs": 3, "opt": "sgd", "amp": False, "note": None}
    assert params(defaults) == defaults
    monkeypatch.setenv(PARAMS_ENV, json.dumps({"lr": 1, "epochs": "5", "amp": "true"}))
    got = params(defaults)
    assert got == {"lr": 1.0, "epochs": 5, "opt": "sgd", "amp": True, "note": None}
    assert isinstance(got["lr"], float)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"lr": "fast"}, "Parameter 'lr' must be a number"),
        ({"epochs": 2.5}, "Parameter 'epochs' must be an integer"),
        ({"amp": "maybe"}, "Parameter 'amp' must be a boolean"),
        ({"lrr": 0.1}, "Unknown parameter"),
    ],
)
def test_params_rejects_bad_overrides_by_name(monkeypatch, given, message):
    monkeypatch.setenv(PARAMS_ENV, json.dumps(given))
    with pytest.raises(ConfigError, match=message):
        params({"lr": 0.1, "epochs": 3, "amp": False})


def test_params_rejects_a_malformed_environment(monkeypatch):
    monkeypatch.setenv(PARAMS_ENV, "{not json")
    with pytest.raises(ConfigError, match="does not hold JSON"):
        params({"lr": 0.1})


def test_memory_sizes():
    assert parse_memory("512M") == 512 * 2**20
    assert parse_memory("4GiB") == 4 * 2**30
    assert parse_memory("2GB") == 2 * 10**9
    assert parse_memory("1.5g") == int(1.5 * 2**30)
    assert parse_memory("1000") == 1000
    with pytest.raises(ConfigError, match="not a memory size"):
        parse_memory("lots")


def test_bare_ray_option_gets_the_default_address(tmp_path: Path):
    script = tmp_path / "train"
    script.write_text("")
    assert fill_ray_address(["--ray"]) == ["--ray", "auto"]
    assert fill_ray_address(["t.py", "--ray", "--workers", "2"])[2] == "auto"
    assert fill_ray_address(["--ray", str(script)]) == ["--ray", "auto", str(script)]
    assert fill_ray_address(["t.py", "--ray", "ray://h:10001"]) == [
        "t.py",
        "--ray",
        "ray://h:10001",
    ]
    assert fill_ray_address(["t.py", "--", "--ray"]) == ["t.py", "--", "--ray"]


def test_child_environment_names_the_workspace_run_and_parameters(ws, monkeypatch):
    monkeypatch.setenv("RANK", "3")
    spec = LaunchSpec(Path("t.py"), params={"lr": 0.5}, cpus=2)
    env = child_env(ws, "run_x", spec)
    assert env["PLINTH_RUN_ID"] == "run_x"
    assert env["PLINTH_HOME"] == str(ws.home)
    assert env["PLINTH_USER"] == "tester"
    assert env["PLINTH_LAUNCHER"] == "local"
    assert json.loads(env[PARAMS_ENV]) == {"lr": 0.5}
    assert env["OMP_NUM_THREADS"] == "2"
    assert "RANK" not in env  # an outer job's rank must not leak into a fresh launch
    assert set(workspace_env(ws.settings)) <= set(env)


def test_launch_spec_checks(tmp_path: Path):
    real = tmp_path / "t.py"
    real.write_text("")
    cases = [
        (LaunchSpec(tmp_path / "missing.py"), "does not exist"),
        (LaunchSpec(real, nproc=2, ray="auto"), "choose different launchers"),
        (LaunchSpec(real, workers=2), "--workers is for Ray"),
        (LaunchSpec(real, nproc=0), "--nproc must be at least 1"),
        (LaunchSpec(real, cpus=0), "--cpus must be more than 0"),
    ]
    for spec, message in cases:
        with pytest.raises(ConfigError, match=message):
            spec.validate()
    assert LaunchSpec(real, ray="auto", workers=2).requested()["workers"] == 2


def test_space_file_parses_each_kind(tmp_path: Path):
    path = tmp_path / "space.yaml"
    path.write_text(
        "lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}\n"
        "depth: {type: int, low: 2, high: 8}\n"
        "opt: {type: categorical, choices: [adam, sgd]}\n"
    )
    space = load_space(path)
    assert [space[k].type for k in ("lr", "depth", "opt")] == ["float", "int", "categorical"]
    assert space["lr"].log and space["opt"].choices == ("adam", "sgd")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"lr": {"type": "float", "low": 0.1}}, "'lr' needs numbers 'low' and 'high'"),
        ({"lr": {"type": "float", "low": 1, "high": 0.5}}, "'lr' has low 1 not below high"),
        ({"lr": {"type": "float", "low": 0, "high": 1, "log": True}}, "'lr' has a log scale"),
        ({"depth": {"type": "int", "low": 1.5, "high": 4}}, "'depth' is an int range"),
        ({"opt": {"type": "categorical", "choices": []}}, "'opt' needs a non-empty list"),
        ({"opt": {"type": "choice", "choices": [1]}}, "'opt' has type 'choice'"),
        ({"opt": {"type": "categorical", "choices": [1], "low": 0}}, "'opt' has unknown key"),
        ({"opt": [1, 2]}, "'opt' is not a mapping"),
    ],
)
def test_malformed_space_names_the_parameter(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_space(spec, "space.yaml")


def test_unreadable_space_files(tmp_path: Path):
    with pytest.raises(ConfigError, match="Cannot read the search space"):
        load_space(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: {type: float, low: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_space(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_space(empty)


def test_cli_errors_are_clean(capsys, tmp_path: Path):
    code = main(["train", str(tmp_path / "missing.py"), "--home", str(tmp_path / "ws")])
    err = capsys.readouterr().err
    assert code == 1
    assert "does not exist" in err and "Traceback" not in err
    code = main(["train", "t.py", "--memory", "lots", "--home", str(tmp_path / "ws")])
    assert code == 1 and "not a memory size" in capsys.readouterr().err
