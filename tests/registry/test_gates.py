"""Promotion gates: policies, scoring, stored decisions, and the alias moving only on a pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import plinth
from plinth.errors import ConfigError
from plinth.registry.gates import Policy, decisions, gate, judge, parse_rule


def _data(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    noise = rng.normal(size=rows)
    return pd.DataFrame(
        {
            "x": x,
            "noise": noise,
            "origin": np.where(np.arange(rows) % 2 == 0, "JFK", "LGA"),
            "delayed": (x + rng.normal(scale=0.7, size=rows) > 0).astype(int),
        }
    )


def _register(ws: plinth.Workspace, column: str) -> int:
    """A model that sees only ``column``: 'x' makes a good model, 'noise' a useless one."""
    data = _data()
    model = LogisticRegression().fit(data[["x", "noise"]].assign(**{
        c: 0.0 for c in ("x", "noise") if c != column
    }), data["delayed"])  # fmt: skip
    info = ws.models.register(model, "delay", example=data[["x", "noise"]].head(5))
    return info.version


@pytest.fixture
def ws(tmp_path: Path) -> plinth.Workspace:
    workspace = plinth.Workspace(tmp_path / "ws")
    yield workspace
    workspace.close()


POLICY = {
    "rules": ["auc >= champion.auc - 0.002", "p99_latency_ms <= 1000", "no slice auc drops > 0.02"],
    "slices": ["origin"],
}


def test_the_first_model_is_judged_on_its_absolute_rules(ws: plinth.Workspace) -> None:
    good = _register(ws, "x")
    result = gate(ws, f"delay:{good}", _data(seed=1), "delayed", POLICY)
    assert result.passed and result.promoted and result.champion_version is None
    assert [o.status for o in result.outcomes] == ["skipped", "passed", "skipped"]
    assert ws.models.resolve("delay@champion") == ("delay", good)


def test_a_worse_challenger_is_refused_and_the_champion_stays(ws: plinth.Workspace) -> None:
    good = _register(ws, "x")
    gate(ws, f"delay:{good}", _data(seed=1), "delayed", POLICY)
    worse = _register(ws, "noise")
    result = gate(ws, f"delay:{worse}", _data(seed=1), "delayed", POLICY)
    assert not result.passed and not result.promoted
    assert result.champion_version == good
    assert result.outcomes[0].status == "failed"
    assert "champion.auc=" in result.outcomes[0].detail
    assert ws.models.resolve("delay@champion") == ("delay", good)
    stored = decisions(ws, "delay", worse)
    assert len(stored) == 1 and stored[0]["passed"] is False
    assert stored[0]["numbers"]["candidate"]["auc"] < stored[0]["numbers"]["champion"]["auc"]
    assert "slice/origin=JFK/auc" in stored[0]["numbers"]["candidate"]


def test_an_equal_or_better_challenger_is_promoted(ws: plinth.Workspace) -> None:
    first = _register(ws, "x")
    gate(ws, f"delay:{first}", _data(seed=1), "delayed", POLICY)
    second = _register(ws, "x")
    result = gate(ws, f"delay:{second}", _data(seed=1), "delayed", POLICY)
    assert result.passed and result.promoted
    assert ws.models.resolve("delay@champion") == ("delay", second)
    history = ws.models.alias_history("delay", "champion")
    assert [e.version for e in history][-1] == second


def test_an_unknown_metric_is_rejected_before_scoring(ws: plinth.Workspace) -> None:
    version = _register(ws, "x")
    with pytest.raises(ConfigError, match=r"unknown metric.*f1"):
        gate(ws, f"delay:{version}", _data(), "delayed", "f1 > 0.5")
    assert decisions(ws, "delay") == []


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ("auc >", "does not parse"),
        ("__import__('os')", "the only function"),
        ("auc.real > 1", "only champion.NAME"),
        ("[auc] == [1]", "not allowed"),
    ],
)
def test_malformed_rules_are_clear_errors(rule: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_rule(rule)


def test_policies_from_yaml_text_lists_and_files(tmp_path: Path) -> None:
    text = "rules:\n  - auc > 0.7\nslices: [origin]\npromote_to: prod\n"
    path = tmp_path / "gate.yaml"
    path.write_text(text)
    for spec in (text, path, str(path)):
        policy = Policy.parse(spec)
        assert policy.slices == ("origin",) and policy.promote_to == "prod"
    assert len(Policy.parse("auc > 0.7 and log_loss < 0.6").rules) == 1
    with pytest.raises(ConfigError, match="unknown key"):
        Policy.parse({"rules": ["auc > 0.7"], "rule": "x"})
    with pytest.raises(ConfigError, match="does not exist"):
        Policy.parse(tmp_path / "missing.yaml")


def test_slice_drops_compare_each_shared_slice() -> None:
    policy = Policy.parse(["no slice auc drops > 0.02", "max_slice_drop('log_loss') <= 0.1"])
    own = {"slice/o=A/auc": 0.70, "slice/o=B/auc": 0.80, "slice/o=A/log_loss": 0.5}
    champion = {"slice/o=A/auc": 0.75, "slice/o=B/auc": 0.79, "slice/o=A/log_loss": 0.45}
    assert [o.status for o in judge(policy, own, champion)] == ["failed", "passed"]
