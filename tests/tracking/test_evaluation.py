"""Binary evaluation metrics against brute-force definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plinth.errors import ConfigError
from plinth.tracking.evaluation import accuracy, binary_report, calibration, log_loss, roc_auc


def _pairwise_auc(labels: list[int], scores: list[float]) -> float:
    positives = [s for s, y in zip(scores, labels, strict=True) if y == 1]
    negatives = [s for s, y in zip(scores, labels, strict=True) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 1), st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])),
        min_size=2,
        max_size=40,
    )
)
def test_auc_matches_the_pairwise_definition(rows: list[tuple[int, float]]) -> None:
    labels = [y for y, _ in rows]
    scores = [s for _, s in rows]
    if len(set(labels)) < 2:
        assert math.isnan(roc_auc(labels, scores))
    else:
        assert roc_auc(labels, scores) == pytest.approx(_pairwise_auc(labels, scores))


def test_log_loss_and_accuracy() -> None:
    assert log_loss([1, 0], [0.5, 0.5]) == pytest.approx(math.log(2))
    assert log_loss([1], [0.0]) == pytest.approx(-math.log(1e-15))
    assert accuracy([1, 0, 1, 0], [0.9, 0.1, 0.2, 0.6]) == 0.5


def test_calibration_of_a_calibrated_scorer_is_near_zero() -> None:
    rng = np.random.default_rng(0)
    scores = rng.uniform(size=200_000)
    labels = (rng.uniform(size=scores.size) < scores).astype(int)
    curve = calibration(labels, scores)
    assert curve.ece < 0.01
    assert sum(curve.counts) == scores.size
    assert curve.observed_rate[0] == pytest.approx(0.05, abs=0.01)
    overconfident = calibration(labels, np.where(scores > 0.5, 1.0, 0.0))
    assert overconfident.ece > 0.2


def test_the_report_names_every_metric() -> None:
    report = binary_report([0, 1, 1, 0], [0.1, 0.8, 0.6, 0.3])
    assert report["auc"] == 1.0 and report["rows"] == 4 and report["base_rate"] == 0.5


@pytest.mark.parametrize(
    ("labels", "scores", "words"),
    [([0, 1], [0.5], "2 labels but 1 scores"), ([], [], "no rows"), ([0, 2], [0.1, 0.2], "0 or 1")],
)
def test_bad_input_is_a_clear_error(labels: list, scores: list, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        roc_auc(labels, scores)
