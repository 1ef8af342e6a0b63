"""Drift statistics from histograms: a reference profile once, then any number of windows.

A numeric column's reference is a fine histogram over its own quantiles (``FINE_BINS`` bins,
edges at the reference's quantiles, open-ended at both sides) plus its standard deviation; a
categorical column's reference is the share of each category (the most frequent
``MAX_CATEGORIES``, the rest pooled). A window is summarized as counts over the same bins, so
windows add up (a day is the sum of its hours) and history never has to be rescanned.

From two histograms:

- numeric: PSI over ``PSI_BINS`` coarse bins (groups of the fine ones, so each holds about the
  same share of the reference), the Kolmogorov-Smirnov statistic (largest gap between the two
  cumulative distributions at the bin edges) and the Wasserstein-1 distance (the area between
  them) divided by the reference's standard deviation;
- categorical: PSI, the Jensen-Shannon distance (base 2, 0 to 1), the chi-square statistic
  of the 2 x k table and Cramer's V (its effect size), with the categories that are new in
  the window or missing from it.

Defaults flag on effect sizes, not p-values: with a million rows every p-value is tiny for a
trivial shift, so a column drifts when PSI >= 0.2, or (numeric) the normalized Wasserstein
distance >= 0.1, or (categorical) the Jensen-Shannon distance >= 0.1. Small windows are the
opposite case: two samples of a few hundred rows from one distribution differ by about 0.1 in
normalized Wasserstein by chance, so that threshold rises to the chance level of the two
sample sizes (:func:`wasserstein_noise`) when it is higher. Every threshold is a field of
:class:`Thresholds`.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = NumericReference.fit(rng.normal(size=10_000))
    >>> numeric_drift(ref, ref.counts(rng.normal(loc=1.0, size=10_000))).drifted
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FINE_BINS = 200
PSI_BINS = 10
MAX_CATEGORIES = 50
OTHER = "__other__"
_EPS = 1e-4


@dataclass(frozen=True)
class Thresholds:
    """When a column counts as drifted, and when a dataset does.

    Example:
        >>> Thresholds(psi=0.1).psi
        0.1
    """

    psi: float = 0.2
    wasserstein: float = 0.1
    js: float = 0.1
    share_drifted: float = 0.5


@dataclass(frozen=True)
class NumericReference:
    """A numeric column's reference: fine bin edges, their counts, the standard deviation."""

    edges: np.ndarray
    counts_: np.ndarray
    std: float
    nulls: int

    @classmethod
    def fit(cls, values: Any, bins: int = FINE_BINS) -> NumericReference:
        """Profile reference values (NaN and None count as nulls).

        Example:
            >>> NumericReference.fit(np.arange(100.0), bins=4).edges.tolist()
            [24.75, 49.5, 74.25]
        """
        array = np.asarray(values, dtype=np.float64)
        present = array[~np.isnan(array)]
        if present.size == 0:
            edges = np.array([], dtype=np.float64)
        else:
            edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))
        ref = cls(edges, np.zeros(edges.size + 1, np.int64), 0.0, 0)
        counts, nulls = ref._count(array)
        std = float(present.std()) if present.size else 0.0
        return cls(edges, counts, std, nulls)

    def _count(self, array: np.ndarray) -> tuple[np.ndarray, int]:
        missing = np.isnan(array)
        present = array[~missing]
        index = np.searchsorted(self.edges, present, side="right")
        return np.bincount(index, minlength=self.edges.size + 1), int(missing.sum())

    def counts(self, values: Any) -> WindowCounts:
        """A window's counts over the reference's bins.

        Example:
            >>> ref = NumericReference.fit(np.arange(100.0), bins=4)
            >>> ref.counts([1.0, 99.0, float("nan")]).counts.tolist()
            [1, 0, 0, 1]
        """
        counts, nulls = self._count(np.asarray(values, dtype=np.float64))
        return WindowCounts(counts, nulls)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (see :func:`reference_from_dict`)."""
        return {
            "kind": "numeric",
            "edges": self.edges.tolist(),
            "counts": self.counts_.tolist(),
            "std": self.std,
            "nulls": self.nulls,
        }

    def _widths(self) -> np.ndarray:
        """Bin widths for the area between CDFs: the outer bins end at the edges."""
        return np.diff(self.edges) if self.edges.size > 1 else np.zeros(0)


@dataclass(frozen=True)
class CategoricalReference:
    """A categorical column's reference: its categories (most frequent first) and counts."""

    categories: tuple[str, ...]
    counts_: np.ndarray
    nulls: int

    @classmethod
    def fit(cls, values: Any, max_categories: int = MAX_CATEGORIES) -> CategoricalReference:
        """Profile reference values; beyond ``max_categories`` the rarest are pooled.

        Example:
            >>> CategoricalReference.fit(["a", "b", "a", None]).categories
            ('a', 'b')
        """
        labels, counts, nulls = _category_counts(values)
        order = np.argsort(-counts, kind="stable")
        kept = [labels[i] for i in order[:max_categories]]
        ref = cls(tuple(kept), np.zeros(len(kept) + 1, np.int64), nulls)
        return cls(tuple(kept), ref.counts(values).counts, nulls)

    def counts(self, values: Any) -> WindowCounts:
        """A window's counts per reference category (the last slot: any other category).

        Example:
            >>> CategoricalReference.fit(["a", "b"]).counts(["a", "c", "c"]).counts.tolist()
            [1, 0, 2]
        """
        labels, counts, nulls = _category_counts(values)
        slot = {c: i for i, c in enumerate(self.categories)}
        out = np.zeros(len(self.categories) + 1, np.int64)
        unseen: dict[str, int] = {}
        for label, count in zip(labels, counts, strict=True):
            i = slot.get(label)
            if i is None:
                out[-1] += count
                unseen[label] = int(count)
            else:
                out[i] += count
        return WindowCounts(out, nulls, unseen)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (see :func:`reference_from_dict`)."""
        return {
            "kind": "categorical",
            "categories": list(self.categories),
            "counts": self.counts_.tolist(),
            "nulls": self.nulls,
        }


def reference_from_dict(data: Mapping[str, Any]) -> NumericReference | CategoricalReference:
    """Rebuild a reference from its ``to_dict()``.

    Example:
        >>> ref = NumericReference.fit(np.arange(10.0), bins=2)
        >>> reference_from_dict(ref.to_dict()).edges.tolist()
        [4.5]
    """
    counts = np.asarray(data["counts"], np.int64)
    if data["kind"] == "numeric":
        edges = np.asarray(data["edges"], np.float64)
        return NumericReference(edges, counts, float(data["std"]), int(data["nulls"]))
    return CategoricalReference(tuple(data["categories"]), counts, int(data["nulls"]))


def _category_counts(values: Any) -> tuple[list[str], np.ndarray, int]:
    import pyarrow as pa
    import pyarrow.compute as pc

    array = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
    if not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
        array = pc.cast(array, pa.string())
    nulls = int(array.null_count)
    counted = pc.value_counts(array.drop_null() if nulls else array)
    labels = [str(v) for v in counted.field("values").to_pylist()]
    return labels, np.asarray(counted.field("counts").to_numpy(), np.int64), nulls


@dataclass(frozen=True)
class WindowCounts:
    """Counts of one column over a reference's bins or categories; windows add up."""

    counts: np.ndarray
    nulls: int
    unseen: dict[str, int] = field(default_factory=dict)

    def __add__(self, other: WindowCounts) -> WindowCounts:
        unseen = dict(self.unseen)
        for label, count in other.unseen.items():
            unseen[label] = unseen.get(label, 0) + count
        return WindowCounts(self.counts + other.counts, self.nulls + other.nulls, unseen)

    @property
    def rows(self) -> int:
        """Non-null values counted."""
        return int(self.counts.sum())

    def to_dict(self) -> dict[str, Any]:
        """A compact JSON-ready dictionary: sparse counts when most bins are empty.

        Example:
            >>> WindowCounts(np.array([0, 0, 0, 5]), 1).to_dict()
            {'n': 4, 'i': [3], 'c': [5], 'nulls': 1}
        """
        nonzero = np.flatnonzero(self.counts)
        out: dict[str, Any] = {"n": int(self.counts.size)}
        if nonzero.size * 2 < self.counts.size:
            out["i"] = nonzero.tolist()
            out["c"] = self.counts[nonzero].tolist()
        else:
            out["counts"] = self.counts.tolist()
        out["nulls"] = self.nulls
        if self.unseen:
            out["unseen"] = dict(self.unseen)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowCounts:
        """Rebuild counts from :meth:`to_dict`.

        Example:
            >>> WindowCounts.from_dict({"n": 3, "i": [1], "c": [2], "nulls": 0}).counts.tolist()
            [0, 2, 0]
        """
        if "counts" in data:
            counts = np.asarray(data["counts"], np.int64)
        else:
            counts = np.zeros(int(data["n"]), np.int64)
            counts[np.asarray(data["i"], np.int64)] = np.asarray(data["c"], np.int64)
        return cls(counts, int(data["nulls"]), dict(data.get("unseen", {})))


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift statistics and verdict."""

    column: str
    kind: str
    psi: float
    drifted: bool
    ks: float | None = None
    wasserstein: float | None = None
    js: float | None = None
    chi2: float | None = None
    cramers_v: float | None = None
    new_categories: tuple[str, ...] = ()
    missing_categories: tuple[str, ...] = ()
    null_share_reference: float = 0.0
    null_share_current: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros_like(counts, dtype=np.float64)


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two count vectors over the same bins.

    Example:
        >>> round(psi(np.array([50, 50]), np.array([50, 50])), 6)
        0.0
    """
    p = np.clip(_shares(reference), _EPS, None)
    q = np.clip(_shares(current), _EPS, None)
    return float(np.sum((q - p) * np.log(q / p)))


def coarse_cuts(reference: np.ndarray, bins: int) -> np.ndarray:
    """Where to cut fine bins into ``bins`` groups of about equal reference share.

    Example:
        >>> coarse_cuts(np.array([10, 10, 10, 10]), 2).tolist()
        [2]
    """
    cumulative = np.cumsum(_shares(reference))
    targets = np.linspace(0, 1, bins + 1)[1:-1]
    cuts = np.unique(np.searchsorted(cumulative, targets, side="left") + 1)
    return cuts[(cuts > 0) & (cuts < reference.size)]


def wasserstein_noise(reference_rows: int, current_rows: int) -> float:
    """The normalized Wasserstein distance two samples of the same distribution reach by
    chance (about three times its typical value, which shrinks as 1/sqrt(rows)).

    Example:
        >>> round(wasserstein_noise(5_000, 500), 3), round(wasserstein_noise(10**6, 10**6), 4)
        (0.141, 0.0042)
    """
    if reference_rows <= 0 or current_rows <= 0:
        return float("inf")
    return 3.0 * float(np.sqrt(1.0 / reference_rows + 1.0 / current_rows))


def numeric_drift(
    reference: NumericReference,
    window: WindowCounts,
    column: str = "",
    thresholds: Thresholds | None = None,
) -> ColumnDrift:
    """PSI, KS and normalized Wasserstein of a window against a numeric reference.

    Example:
        >>> rng = np.random.default_rng(1)
        >>> ref = NumericReference.fit(rng.normal(size=50_000))
        >>> numeric_drift(ref, ref.counts(rng.normal(size=50_000))).drifted
        False
    """
    limits = thresholds or Thresholds()
    ref_counts, cur_counts = reference.counts_, window.counts
    cuts = coarse_cuts(ref_counts, PSI_BINS)
    value = psi(
        np.add.reduceat(ref_counts, np.r_[0, cuts]), np.add.reduceat(cur_counts, np.r_[0, cuts])
    )
    ref_cdf = np.cumsum(_shares(ref_counts))[:-1]
    cur_cdf = np.cumsum(_shares(cur_counts))[:-1]
    gap = np.abs(ref_cdf - cur_cdf)
    ks = float(gap.max()) if gap.size else 0.0
    # Area between the CDFs over the inner bins (the open outer bins have no width).
    widths = reference._widths()
    area = float(np.sum(0.5 * (gap[:-1] + gap[1:]) * widths)) if widths.size else 0.0
    wasserstein = area / reference.std if reference.std > 0 else 0.0
    drifted = value >= limits.psi or wasserstein >= max(
        limits.wasserstein, wasserstein_noise(int(ref_counts.sum()), window.rows)
    )
    return ColumnDrift(
        column,
        "numeric",
        value,
        bool(drifted),
        ks=ks,
        wasserstein=wasserstein,
        null_share_reference=_null_share(reference.nulls, int(ref_counts.sum())),
        null_share_current=_null_share(window.nulls, window.rows),
    )


def categorical_drift(
    reference: CategoricalReference,
    window: WindowCounts,
    column: str = "",
    thresholds: Thresholds | None = None,
) -> ColumnDrift:
    """PSI, Jensen-Shannon distance and Cramer's V of a window against categories.

    Example:
        >>> ref = CategoricalReference.fit(["a"] * 50 + ["b"] * 50)
        >>> d = categorical_drift(ref, ref.counts(["a"] * 90 + ["c"] * 10))
        >>> d.drifted, d.new_categories, d.missing_categories
        (True, ('c',), ('b',))
    """
    limits = thresholds or Thresholds()
    ref_counts, cur_counts = reference.counts_, window.counts
    value = psi(ref_counts, cur_counts)
    p, q = _shares(ref_counts), _shares(cur_counts)
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.nansum(np.where(p > 0, p * np.log2(p / m), 0.0))
        kl_q = np.nansum(np.where(q > 0, q * np.log2(q / m), 0.0))
    js = float(np.sqrt(max(0.0, 0.5 * (kl_p + kl_q))))
    table = np.vstack([ref_counts, cur_counts]).astype(np.float64)
    used = table.sum(axis=0) > 0
    table = table[:, used]
    total = table.sum()
    cramers = chi2 = 0.0
    if total and table.shape[1] > 1:
        expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / total
        chi2 = float(np.sum((table - expected) ** 2 / expected))
        cramers = float(np.sqrt(chi2 / total))
    missing = tuple(
        c
        for c, ref_n, cur_n in zip(reference.categories, ref_counts, cur_counts, strict=False)
        if ref_n > 0 and cur_n == 0
    )
    drifted = value >= limits.psi or js >= limits.js
    return ColumnDrift(
        column,
        "categorical",
        value,
        bool(drifted),
        js=js,
        chi2=chi2,
        cramers_v=cramers,
        new_categories=tuple(sorted(window.unseen)),
        missing_categories=missing,
        null_share_reference=_null_share(reference.nulls, int(ref_counts.sum())),
        null_share_current=_null_share(window.nulls, window.rows),
    )


def _null_share(nulls: int, present: int) -> float:
    total = nulls + present
    return nulls / total if total else 0.0


@dataclass(frozen=True)
class DriftReport:
    """Every column's drift and the dataset-level verdict (share of drifted columns)."""

    columns: list[ColumnDrift]
    share_drifted: float
    drifted: bool

    def flagged(self) -> list[str]:
        """The names of the drifted columns."""
        return [c.column for c in self.columns if c.drifted]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "columns": [c.to_dict() for c in self.columns],
            "share_drifted": self.share_drifted,
            "drifted": self.drifted,
        }


Reference = NumericReference | CategoricalReference


def fit_references(table: Any, columns: Sequence[str] | None = None) -> dict[str, Reference]:
    """Reference profiles of an Arrow table's columns (numeric or categorical by type).

    Example:
        >>> import pyarrow as pa
        >>> refs = fit_references(pa.table({"x": [1.0, 2.0], "c": ["a", "b"]}))
        >>> sorted((k, type(v).__name__) for k, v in refs.items())
        [('c', 'CategoricalReference'), ('x', 'NumericReference')]
    """
    import pyarrow as pa

    out: dict[str, Reference] = {}
    for name in columns or table.column_names:
        column = table.column(name)
        kind = column.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            out[name] = NumericReference.fit(
                column.to_numpy(zero_copy_only=False).astype(np.float64)
            )
        else:
            out[name] = CategoricalReference.fit(column)
    return out


def window_counts(references: Mapping[str, Reference], table: Any) -> dict[str, WindowCounts]:
    """A window's counts for every referenced column of an Arrow table.

    Example:
        >>> # counts = window_counts(refs, ws.lake.read("predictions__delay"))
    """
    out: dict[str, WindowCounts] = {}
    for name, reference in references.items():
        column = table.column(name)
        if isinstance(reference, NumericReference):
            out[name] = reference.counts(column.to_numpy(zero_copy_only=False).astype(np.float64))
        else:
            out[name] = reference.counts(column)
    return out


def drift_report(
    references: Mapping[str, Reference],
    windows: Mapping[str, WindowCounts],
    thresholds: Thresholds | None = None,
) -> DriftReport:
    """Drift of every column of a window against its reference.

    Example:
        >>> # drift_report(refs, window_counts(refs, current)).flagged()
    """
    limits = thresholds or Thresholds()
    columns = []
    for name, reference in references.items():
        if isinstance(reference, NumericReference):
            columns.append(numeric_drift(reference, windows[name], name, limits))
        else:
            columns.append(categorical_drift(reference, windows[name], name, limits))
    share = sum(c.drifted for c in columns) / len(columns) if columns else 0.0
    return DriftReport(columns, share, share >= limits.share_drifted)
