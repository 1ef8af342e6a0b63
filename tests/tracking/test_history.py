"""Metric histories: round trips, downsampling that keeps extremes and ends, and charts."""

from __future__ import annotations

import math
import random
import re
import sys
from collections import defaultdict

import pytest

from plinth.errors import ConfigError, NotFoundError, PlinthError, RunNotFoundError
from plinth.tracking import history as history_module
from plinth.tracking.history import MetricHistory, downsample, metric_history
from plinth.tracking.plot import line_chart, render_html, write_plot
from plinth.tracking.points import pack
from plinth.tracking.service import Runs
from tests.tracking.rows import add_run, add_series

# -- a brute-force oracle ------------------------------------------------------------------------


def oracle(steps, values, max_points):
    """What downsampling must return, computed point by point."""
    points = [(s, v, i) for i, (s, v) in enumerate(zip(steps, values, strict=True))]
    buckets = (max_points - 2) // 2
    first = min(steps)
    width = max(-(-(max(steps) - first + 1) // buckets), 1) if buckets else 1
    keep = {
        min(points, key=lambda p: (p[0], p[2]))[2],
        max(points, key=lambda p: (p[0], p[2]))[2],
    }
    if buckets:
        groups = defaultdict(list)
        for p in points:
            groups[(p[0] - first) // width].append(p)
        for group in groups.values():
            real = [p for p in group if not math.isnan(p[1])]
            if real:
                keep.add(min(real, key=lambda p: (p[1], p[0], p[2]))[2])
                keep.add(min(real, key=lambda p: (-p[1], p[0], p[2]))[2])
            else:
                keep.add(min(group, key=lambda p: (p[0], p[2]))[2])
    chosen = [points[i] for i in keep]
    chosen.sort(key=lambda p: (p[0], p[2]))
    return [p[0] for p in chosen], [p[1] for p in chosen]


def chunks_of(steps, values, size):
    out = []
    for start in range(0, len(steps), size):
        row = pack(
            list(steps[start : start + size]),
            list(values[start : start + size]),
            [0] * len(steps[start : start + size]),
        )
        out.append((row["steps"], row["values"], row["timestamps_us"]))
    return out


def same_values(left, right):
    return len(left) == len(right) and all(
        (math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(left, right, strict=True)
    )


@pytest.mark.parametrize("seed", range(25))
def test_downsampling_matches_the_oracle(seed, monkeypatch):
    rng = random.Random(seed)
    n = rng.choice([50, 300, 2000])
    steps = [rng.randrange(0, n // rng.choice([1, 2, 5])) for _ in range(n)]
    if rng.random() < 0.5:
        steps.sort()
    specials = [math.nan, math.inf, -math.inf]
    values = [
        rng.choice(specials) if rng.random() < 0.05 else round(rng.gauss(0, 1), 2) for _ in range(n)
    ]
    if rng.random() < 0.3:  # a stretch of NaN only
        values[n // 3 : n // 2] = [math.nan] * (n // 2 - n // 3)
    max_points = rng.choice([2, 3, 4, 9, 40, 101])
    # A small buffer makes the reduction run many times, as on a long series.
    monkeypatch.setattr(history_module, "BUFFER_POINTS", rng.choice([7, 100, 10**6]))
    got_steps, got_values, _ = downsample(
        chunks_of(steps, values, rng.choice([1, 13, 500])), min(steps), max(steps), max_points
    )
    want_steps, want_values = oracle(steps, values, max_points)
    assert got_steps.tolist() == want_steps
    assert same_values(got_values.tolist(), want_values)
    assert len(got_steps) <= max(max_points, 2)


# -- through the catalog, on both backends -------------------------------------------------------


def test_short_series_round_trips_nan_and_infinities(workspace):
    steps = [0, 1, 2, 3, 4, 2]  # the last point repeats step 2, logged later
    values = [1.0, math.nan, math.inf, -math.inf, 0.5, 7.0]
    with workspace.catalog.session() as s:
        add_run(s, "run_a")
        add_series(s, "run_a", "loss", steps, values, chunk=4)
    found = metric_history(workspace, "run_a", "loss")
    assert found.steps == [0, 1, 2, 2, 3, 4]
    assert math.isnan(found.values[1])
    assert found.values[2:] == [math.inf, 7.0, -math.inf, 0.5]
    assert found.total == 6 and not found.downsampled
    assert found.timestamps[0].tzinfo is not None
    assert found.timestamps[1] > found.timestamps[0]
    assert found.to_dict()["values"] == [1.0, None, None, 7.0, None, 0.5]


def test_long_series_is_downsampled_keeping_spikes_dips_and_ends(workspace):
    n = 10_000
    values = [math.sin(i / 300) for i in range(n)]
    values[4321] = 100.0  # a spike
    values[7777] = -100.0  # a dip
    values[9000] = math.nan
    with workspace.catalog.session() as s:
        add_run(s, "run_a")
        add_series(s, "run_a", "loss", list(range(n)), values, chunk=1024)
    runs = Runs(workspace)
    found = runs.history("run_a", "loss", max_points=200)
    assert 100 < len(found.steps) <= 200
    assert found.total == n and found.downsampled
    assert found.steps == sorted(found.steps)
    assert found.steps[0] == 0 and found.steps[-1] == n - 1
    assert dict(zip(found.steps, found.values, strict=True))[4321] == 100.0
    assert dict(zip(found.steps, found.values, strict=True))[7777] == -100.0
    assert not any(math.isnan(v) for v in found.values)  # its bucket has real values
    want_steps, _ = oracle(list(range(n)), values, 200)
    assert found.steps == want_steps
    assert len(runs.history("run_a", "loss", max_points=2).steps) == 2
    assert runs.history("run_a", "loss", max_points=3).steps == [0, n - 1]
    assert len(runs.history("run_a", "loss", max_points=n).steps) == n


def test_history_errors(workspace):
    with workspace.catalog.session() as s:
        add_run(s, "run_a")
        add_series(s, "run_a", "loss", [0], [1.0])
        add_run(s, "run_b", minutes=1)
    with pytest.raises(RunNotFoundError, match="No run has the id 'ghost'"):
        metric_history(workspace, "ghost", "loss")
    with pytest.raises(NotFoundError, match="Run 'run_a' has no metric 'acc'") as caught:
        metric_history(workspace, "run_a", "acc")
    assert "loss" in (caught.value.hint or "")
    with pytest.raises(NotFoundError, match="has no metric") as caught:
        metric_history(workspace, "run_b", "acc")
    assert "no metrics" in (caught.value.hint or "")
    with pytest.raises(ConfigError, match="at least 2"):
        metric_history(workspace, "run_a", "loss", max_points=1)
    with workspace.catalog.session() as session:
        assert metric_history(session, "run_a", "loss").values == [1.0]


# -- charts --------------------------------------------------------------------------------------


@pytest.fixture
def charted(workspace):
    n = 10_000
    with workspace.catalog.session() as s:
        add_run(s, "run_a", experiment="flights")
        add_run(s, "run_b", experiment="flights", minutes=1)
        add_run(s, "run_c", minutes=2)
        for run_id, scale in (("run_a", 1.0), ("run_b", 2.0)):
            add_series(
                s, run_id, "loss", list(range(n)), [scale / (1 + i) for i in range(n)], chunk=4096
            )
        auc = [0.5 + i / 40 for i in range(20)]
        auc[10] = math.nan
        add_series(s, "run_a", "auc", list(range(20)), auc)
    return Runs(workspace)


def test_plot_writes_a_small_self_contained_page(charted, tmp_path):
    path = charted.plot(["run_a", "run_b"], path=tmp_path / "runs.html")
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 2  # auc and loss
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")
    assert "run_a (flights)" in page and "run_b (flights)" in page
    assert re.search(r"<td class=.n.>9\d\d of 10,000</td>", page)  # downsampled, says so
    assert path.stat().st_size < 80_000
    auc_chart = page.split("<h2>auc</h2>")[1].split("</svg>")[0]
    assert auc_chart.count('d="M') == 1 and auc_chart.count("L") >= 2
    assert auc_chart.split('d="')[1].count("M") == 2  # the NaN breaks the line


def test_plot_chosen_metrics_and_errors(charted, tmp_path):
    path = charted.plot(["run_b", "run_a"], ["loss"], tmp_path / "loss.htm", max_points=50)
    page = path.read_text(encoding="utf-8")
    assert page.count("<svg") == 1 and "<h2>auc</h2>" not in page
    assert path.stat().st_size < 20_000
    with pytest.raises(NotFoundError, match="None of the runs has the metric 'acc'") as caught:
        charted.plot(["run_a"], ["acc"], tmp_path / "x.html")
    assert "auc, loss" in (caught.value.hint or "")
    with pytest.raises(NotFoundError, match="logged no metrics"):
        charted.plot(["run_c"], None, tmp_path / "x.html")
    with pytest.raises(ConfigError, match="chart format") as caught:
        charted.plot(["run_a"], None, tmp_path / "x.svg")
    assert ".png" in (caught.value.hint or "")
    with pytest.raises(RunNotFoundError):
        charted.plot(["run_a", "ghost"], None, tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()


def test_plot_png_needs_matplotlib(charted, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(PlinthError, match="needs matplotlib") as caught:
        charted.plot(["run_a"], ["loss"], tmp_path / "x.png")
    assert "plinth-ai[plot]" in (caught.value.hint or "")
    assert not (tmp_path / "x.png").exists()


def test_plot_png(charted, tmp_path):
    pytest.importorskip("matplotlib")
    path = charted.plot(["run_a", "run_b"], None, tmp_path / "runs.png")
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_charts_of_odd_series():
    lone = MetricHistory("r", "k", [5], [1.0], [], 1)
    empty = MetricHistory("s", "k", [], [], [], 0)
    nan_only = MetricHistory("t", "k", [0, 1], [math.nan, math.nan], [], 2)
    svg = line_chart([lone, empty, nan_only], ["#111", "#222", "#333"], ["r", "s", "t"])
    assert "<circle" in svg and "<path" not in svg
    page = render_html([lone], labels={"r": "<b>run</b>"}, title="<i>t</i>")
    assert "<b>run</b>" not in page and "&lt;b&gt;run&lt;/b&gt;" in page
    assert "&lt;i&gt;t&lt;/i&gt;" in page


def test_write_plot_is_atomic_and_names_the_format(tmp_path):
    h = MetricHistory("r", "k", [0, 1], [1.0, 2.0], [], 2)
    with pytest.raises(ConfigError, match="'chart'"):
        write_plot([h], tmp_path / "chart")
    path = write_plot([h], tmp_path / "chart.HTML")
    assert path.read_text(encoding="utf-8").endswith("</html>")
    assert [p.name for p in tmp_path.iterdir()] == ["chart.HTML"]
