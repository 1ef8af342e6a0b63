"""Evaluation metrics of binary classifiers, in NumPy: AUC, log loss, calibration.

Small and dependency-free so that training scripts, pipeline gates and monitoring compute
the same numbers the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from plinth.errors import ConfigError

EPSILON = 1e-15


def _arrays(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.float64).ravel()
    p = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ConfigError(
            f"Got {y.size} labels but {p.size} scores.",
            hint="Pass one score per label.",
        )
    if y.size == 0:
        raise ConfigError("Cannot evaluate on no rows.", hint="Pass at least one labelled row.")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ConfigError(
            "Binary labels must be 0 or 1 (or booleans).",
            hint="Threshold or encode the target first, e.g. arr_delay > 15.",
        )
    return y, p


def roc_auc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve (ties count one half); NaN when one class is absent.

    Example:
        >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        0.75
    """
    y, p = _arrays(labels, scores)
    positives = int(y.sum())
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    sorted_scores = p[order]
    ranks = np.empty(y.size, dtype=np.float64)
    # Average ranks over tied scores (Mann-Whitney U).
    _, starts, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = starts + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    u = ranks[y == 1].sum() - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


def log_loss(labels: Any, scores: Any) -> float:
    """Mean binary cross-entropy, with probabilities clipped to [1e-15, 1 - 1e-15].

    Example:
        >>> round(log_loss([0, 1], [0.2, 0.9]), 4)
        0.1643
    """
    y, p = _arrays(labels, scores)
    p = np.clip(p, EPSILON, 1 - EPSILON)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def accuracy(labels: Any, scores: Any, threshold: float = 0.5) -> float:
    """Share of rows whose score is on the label's side of ``threshold``.

    Example:
        >>> accuracy([0, 1, 1], [0.2, 0.7, 0.4])
        0.6666666666666666
    """
    y, p = _arrays(labels, scores)
    return float(np.mean((p >= threshold) == (y == 1)))


@dataclass(frozen=True)
class Calibration:
    """A reliability curve: per score bin, the mean score, the observed rate and the count."""

    edges: list[float]
    mean_score: list[float | None]
    observed_rate: list[float | None]
    counts: list[int]
    ece: float

    def as_dict(self) -> dict[str, Any]:
        """The curve as plain lists, for JSON artifacts."""
        return {
            "edges": self.edges,
            "mean_score": self.mean_score,
            "observed_rate": self.observed_rate,
            "counts": self.counts,
            "ece": self.ece,
        }


def calibration(labels: Any, scores: Any, bins: int = 10) -> Calibration:
    """Reliability curve over ``bins`` equal-width score bins and the expected calibration
    error (count-weighted mean gap between mean score and observed rate).

    Example:
        >>> calibration([0, 1, 1, 0], [0.1, 0.9, 0.8, 0.3], bins=2).counts
        [2, 2]
    """
    y, p = _arrays(labels, scores)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    score_sums = np.bincount(index, weights=p, minlength=bins)
    label_sums = np.bincount(index, weights=y, minlength=bins)
    mean_score: list[float | None] = []
    observed: list[float | None] = []
    gap = 0.0
    for count, score_sum, label_sum in zip(counts, score_sums, label_sums, strict=True):
        if count == 0:
            mean_score.append(None)
            observed.append(None)
            continue
        mean_score.append(float(score_sum / count))
        observed.append(float(label_sum / count))
        gap += abs(score_sum - label_sum)
    return Calibration(
        edges=[float(e) for e in edges],
        mean_score=mean_score,
        observed_rate=observed,
        counts=[int(c) for c in counts],
        ece=float(gap / y.size),
    )


def binary_report(labels: Any, scores: Any) -> dict[str, float]:
    """AUC, log loss, accuracy, expected calibration error, base rate and mean score.

    Example:
        >>> sorted(binary_report([0, 1], [0.2, 0.9]))
        ['accuracy', 'auc', 'base_rate', 'ece', 'log_loss', 'mean_score', 'rows']
    """
    y, p = _arrays(labels, scores)
    return {
        "auc": roc_auc(y, p),
        "log_loss": log_loss(y, p),
        "accuracy": accuracy(y, p),
        "ece": calibration(y, p).ece,
        "base_rate": float(y.mean()),
        "mean_score": float(p.mean()),
        "rows": float(y.size),
    }
