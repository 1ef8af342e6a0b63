"""Drift statistics: known shifts are flagged, random halves are not, windows add up."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from plinth.monitoring.drift import (
    CategoricalReference,
    NumericReference,
    Thresholds,
    categorical_drift,
    drift_report,
    fit_references,
    numeric_drift,
    psi,
    window_counts,
)

SHIFTED = ["n0", "n3", "n7", "c1", "c4"]


def synthetic(rows: int, seed: int, shifted: bool) -> pa.Table:
    """15 numeric and 5 categorical columns; with ``shifted``, 5 of them move."""
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    for i in range(15):
        values = rng.normal(loc=i, scale=1 + i / 10, size=rows)
        if shifted and f"n{i}" in SHIFTED:
            values = values + 0.5 * (1 + i / 10)  # half a standard deviation
        columns[f"n{i}"] = values
    letters = np.array(list("abcdef"))
    for i in range(5):
        weights = np.array([0.3, 0.25, 0.2, 0.15, 0.07, 0.03])
        if shifted and f"c{i}" in SHIFTED:
            weights = np.array([0.1, 0.2, 0.2, 0.2, 0.15, 0.15])
        columns[f"c{i}"] = letters[rng.choice(6, size=rows, p=weights)]
    return pa.table(columns)


def test_exactly_the_five_shifted_columns_are_flagged():
    reference = synthetic(200_000, 1, shifted=False)
    refs = fit_references(reference)
    report = drift_report(refs, window_counts(refs, synthetic(200_000, 2, shifted=True)))
    assert sorted(report.flagged()) == sorted(SHIFTED)
    assert report.share_drifted == pytest.approx(5 / 20) and not report.drifted


def test_random_halves_of_a_million_rows_flag_nothing():
    data = synthetic(1_000_000, 3, shifted=False)
    order = np.random.default_rng(4).permutation(data.num_rows)
    first, second = data.take(order[: data.num_rows // 2]), data.take(order[data.num_rows // 2 :])
    refs = fit_references(first)
    report = drift_report(refs, window_counts(refs, second))
    assert report.flagged() == []
    worst = max(c.psi for c in report.columns)
    assert worst < 0.01


def test_windows_add_up_to_the_whole():
    rng = np.random.default_rng(5)
    ref = NumericReference.fit(rng.normal(size=10_000))
    values = rng.normal(size=9_000)
    parts = [ref.counts(values[i : i + 3_000]) for i in range(0, 9_000, 3_000)]
    total = parts[0] + parts[1] + parts[2]
    assert total.counts.tolist() == ref.counts(values).counts.tolist()
    drift_parts = numeric_drift(ref, total)
    assert drift_parts == numeric_drift(ref, ref.counts(values))


def test_numeric_statistics_grow_with_the_shift_and_thresholds_apply():
    rng = np.random.default_rng(6)
    ref = NumericReference.fit(rng.normal(size=100_000))
    small = numeric_drift(ref, ref.counts(rng.normal(0.05, size=100_000)))
    large = numeric_drift(ref, ref.counts(rng.normal(1.0, size=100_000)))
    assert not small.drifted and large.drifted
    assert small.psi < large.psi and small.ks < large.ks
    assert large.wasserstein == pytest.approx(1.0, abs=0.1)  # a shift of one std
    assert numeric_drift(
        ref, ref.counts(rng.normal(0.05, size=100_000)), thresholds=Thresholds(psi=0.001)
    ).drifted


def test_categorical_new_missing_and_nulls():
    ref = CategoricalReference.fit(["a"] * 60 + ["b"] * 40)
    drift = categorical_drift(ref, ref.counts(["a"] * 50 + ["z"] * 40 + [None] * 10), "c")
    assert drift.drifted and drift.new_categories == ("z",) and drift.missing_categories == ("b",)
    assert drift.null_share_current == pytest.approx(0.1) and drift.null_share_reference == 0.0
    assert 0 < drift.js <= 1 and 0 < drift.cramers_v <= 1
    assert psi(np.array([10, 10]), np.array([10, 10])) == pytest.approx(0.0)
