"""The HTML monitoring report: sections, empty input, escaping, size and atomic writes."""

from __future__ import annotations

import math
import random
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

import pytest

from plinth.monitoring.report import render_report, write_report

START = datetime(2025, 12, 20, tzinfo=UTC)
SECTIONS = ("Drift", "Performance", "Data quality on traffic", "Latency", "Alerts")
EVIL = "<script>alert(1)</script>"


def _iso(t: datetime) -> str:
    return t.isoformat()


def make_summary(
    windows: int = 30, features: int = 6, alerts: int = 4, seed: int = 0
) -> dict[str, Any]:
    """A synthetic summary shaped like the monitoring service's output."""
    rng = random.Random(seed)
    names = [f"feature_{i:02d}" for i in range(features)]
    kinds = {n: ("numeric" if i % 3 else "categorical") for i, n in enumerate(names)}
    drift, performance, quality, latency = [], [], [], []
    for w in range(windows):
        start, end = START + timedelta(days=w), START + timedelta(days=w + 1)
        columns = []
        for i, name in enumerate(names):
            psi = abs(rng.gauss(0.05 + 0.3 * (i == 0) * w / max(windows, 1), 0.05))
            numeric = kinds[name] == "numeric"
            wass = abs(rng.gauss(0.04, 0.03)) if numeric else None
            js = None if numeric else abs(rng.gauss(0.05, 0.03))
            columns.append(
                {
                    "column": name,
                    "kind": kinds[name],
                    "psi": psi,
                    "drifted": psi >= 0.2 or (wass or 0) >= 0.1 or (js or 0) >= 0.1,
                    "ks": abs(rng.gauss(0.05, 0.02)) if numeric else None,
                    "wasserstein": wass,
                    "js": js,
                    "cramers_v": None if numeric else abs(rng.gauss(0.05, 0.02)),
                    "new_categories": [] if numeric else ["ZZZ", "YYY"][: w % 3],
                    "missing_categories": [] if numeric else ["AAA"][: w % 2],
                    "null_share_reference": 0.01,
                    "null_share_current": 0.01 + (0.05 if i == 1 and w > windows // 2 else 0),
                }
            )
        share = sum(c["drifted"] for c in columns) / len(columns) if columns else 0.0
        drift.append(
            {
                "start": _iso(start),
                "end": _iso(end),
                "rows": 1000 + w,
                "share_drifted": share,
                "drifted": share >= 0.5,
                "columns": columns,
            }
        )
        performance.append(
            {
                "start": _iso(start),
                "end": _iso(end),
                "rows": 1000 + w,
                "labelled": 800 + w,
                "metrics": {
                    "auc": 0.75 - 0.001 * w + rng.gauss(0, 0.01),
                    "log_loss": 0.5 + 0.001 * w,
                    "brier": 0.18,
                    "accuracy": 0.7,
                },
                "slices": {
                    "origin": {
                        code: {"rows": rows, "auc": auc, "log_loss": 0.5}
                        for code, rows, auc in (
                            ("JFK", 400, 0.76),
                            ("LGA", 350, 0.6),
                            ("EWR", 250, 0.74),
                        )
                    }
                },
            }
        )
        quality.append(
            {
                "start": _iso(start),
                "rows": 1000 + w,
                "columns": {
                    name: {
                        "null_share": 0.01 + (0.05 if i == 1 and w > windows // 2 else 0),
                        "out_of_range_share": 0.02 if i == 2 else 0.0,
                        "unseen": {"XYZ": 3, "QQQ": 9} if kinds[name] == "categorical" else {},
                    }
                    for i, name in enumerate(names)
                },
            }
        )
        latency.append(
            {
                "start": _iso(start),
                "p50_ms": 4 + rng.random(),
                "p95_ms": 11 + rng.random(),
                "p99_ms": 25 + 5 * rng.random(),
                "rows": 1000 + w,
            }
        )
    histograms = {
        name: (
            {
                "kind": "numeric",
                "labels": [f"{10 * b}-{10 * (b + 1)}" for b in range(20)],
                "reference": [0.05] * 20,
                "current": [0.04] * 10 + [0.06] * 10,
            }
            if kinds[name] == "numeric"
            else {
                "kind": "categorical",
                "labels": ["JFK", "LGA", "EWR", "__other__"],
                "reference": [0.4, 0.3, 0.2, 0.1],
                "current": [0.3, 0.3, 0.3, 0.1],
            }
        )
        for name in names
    }
    alert_list = []
    for a in range(alerts):
        fired = START + timedelta(days=rng.uniform(0, max(windows - 2, 1)))
        resolved = fired + timedelta(days=rng.uniform(0.5, 5)) if a % 3 else None
        events = [{"at": _iso(fired), "kind": "fired", "action": None, "status": None}]
        events.append(
            {
                "at": _iso(fired + timedelta(hours=1)),
                "kind": "action",
                "action": "retrain",
                "status": "succeeded",
                "pipeline_run_id": f"run_{a:04d}",
            }
        )
        if resolved:
            events.append({"at": _iso(resolved), "kind": "resolved"})
        alert_list.append(
            {
                "id": a + 1,
                "rule": f"rule-{a % 5}",
                "state": "resolved" if resolved else "firing",
                "severity": ("warning", "critical", "info")[a % 3],
                "message": f"feature_00 drifted (PSI 0.3{a})",
                "fired_at": _iso(fired),
                "resolved_at": _iso(resolved) if resolved else None,
                "events": events,
            }
        )
    return {
        "model": "delay",
        "version": 3,
        "uri": "delay@champion",
        "generated_at": _iso(START + timedelta(days=windows, hours=10)),
        "reference": {"description": "training set ts_abc (rows 120,000)", "rows": 120000},
        "window": "1d",
        "drift": drift,
        "thresholds": {"psi": 0.2, "wasserstein": 0.1, "js": 0.1, "share_drifted": 0.5},
        "histograms": histograms,
        "performance": performance,
        "quality": quality,
        "latency": latency,
        "alerts": alert_list,
    }


class _Checker(HTMLParser):
    """Checks that every non-void element is closed in order."""

    VOID: ClassVar[set[str]] = {
        "meta",
        "br",
        "hr",
        "img",
        "input",
        "link",
        "col",
        "area",
        "base",
        "wbr",
    }

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def _check_page(page: str) -> list[str]:
    """Assert the page is well-formed; return its SVG fragments (each parsed as XML)."""
    assert page.startswith("<!DOCTYPE html>")
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert checker.errors == []
    assert checker.stack == []
    svgs = re.findall(r"<svg\b.*?</svg>", page, flags=re.S)
    assert len(svgs) == page.count("<svg")
    for svg in svgs:
        root = ET.fromstring(svg)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        for element in root.iter():
            for name in ("x", "y", "width", "height", "cx", "cy"):
                value = element.get(name)
                if value is not None:
                    assert math.isfinite(float(value)), (name, value)
            numbers = re.findall(r"\d+\.\d+", element.get("d", ""))
            assert all(len(n.split(".")[1]) <= 1 for n in numbers)
    # Self-contained: no scripts, no external resources.
    lowered = page.lower()
    assert "<script" not in lowered
    assert " src=" not in lowered and " href=" not in lowered and "@import" not in lowered
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"] * len(svgs)
    return svgs


def test_full_summary_renders_every_section() -> None:
    summary = make_summary()
    page = render_report(summary)
    svgs = _check_page(page)
    for section in SECTIONS:
        assert f"<h2>{section}</h2>" in page
    assert "no data yet" not in page
    # share chart + 6 features x (drift + histogram) + 4 metrics + rows + nulls + latency + alerts
    assert len(svgs) == 1 + 6 * 2 + 4 + 1 + 1 + 1 + 1
    assert "delay@champion" in page and "version 3" in page
    assert "training set ts_abc (rows 120,000)" in page
    assert "30 windows" in page and "open alert" in page
    # Dates on the axes: the windows span a new year, so YYYY-MM-DD.
    assert ">2025-12-20<" in page
    # Slices, quality and alert details.
    assert "by origin" in page and ">LGA<" in page
    assert "QQQ (9), XYZ (3)" in page
    assert "run_0000" in page and "retrain" in page
    assert "Alert timeline" in page


def test_short_dates_within_one_year() -> None:
    summary = make_summary(windows=10)
    for key in ("drift", "performance", "quality", "latency"):
        for w, window in enumerate(summary[key]):
            window["start"] = _iso(datetime(2026, 3, 1, tzinfo=UTC) + timedelta(days=w))
    page = render_report(summary)
    assert ">03-01<" in page
    assert ">2026-03-01<" not in page


def test_feature_order_drifted_first_then_psi() -> None:
    def column(name: str, psi: float, drifted: bool) -> dict[str, Any]:
        return {"column": name, "kind": "numeric", "psi": psi, "drifted": drifted}

    summary = {
        "model": "m",
        "drift": [
            {
                "start": None,
                "share_drifted": 0.25,
                "columns": [
                    column("low", 0.01, False),
                    column("wass", 0.05, True),
                    column("mid", 0.15, False),
                    column("high", 0.3, True),
                ],
            }
        ],
    }
    page = render_report(summary)
    _check_page(page)
    cards = re.findall(r"<div class='card'><h3>(\w+)<", page)
    assert cards == ["high", "wass", "mid", "low"]
    assert ">#1<" in page  # a window with no start is labelled by number


def test_empty_summary_notes_no_data() -> None:
    page = render_report({"model": "m"})
    _check_page(page)
    for section in SECTIONS:
        assert f"<h2>{section}</h2>" in page
    assert page.count("no data yet") >= 5
    assert "<svg" not in page
    assert "0 windows" in page and "0 open alerts" in page


def test_empty_and_odd_values_render() -> None:
    summary: dict[str, Any] = {
        "model": "m",
        "version": None,
        "reference": None,
        "drift": [{}, {"columns": [{"column": "x", "psi": float("nan")}]}, "junk"],
        "thresholds": {"psi": "high"},
        "histograms": {"x": {"labels": ["a"], "reference": [None], "current": [0.5]}},
        "performance": [{"metrics": {}}],
        "quality": [{"columns": {"x": {"null_share": None, "unseen": {"a": None}}}}],
        "latency": [{"p50_ms": float("inf")}],
        "alerts": [{"id": 1, "rule": None, "fired_at": "not a date", "events": None}],
    }
    page = render_report(summary)
    _check_page(page)
    assert "Performance (needs labelled predictions): no data yet" in page
    assert "Latency: no data yet" in page
    assert "no dated alerts yet" in page


def test_every_string_is_escaped() -> None:
    summary = make_summary(windows=3, features=2, alerts=1)
    window = summary["drift"][-1]
    window["columns"][0]["column"] = EVIL
    window["columns"][1]["new_categories"] = [EVIL]
    summary["histograms"] = {EVIL: {"labels": [EVIL], "reference": [1.0], "current": [1.0]}}
    summary["quality"][-1]["columns"] = {EVIL: {"null_share": 0.5, "unseen": {EVIL: 2}}}
    summary["performance"][-1]["slices"] = {EVIL: {EVIL: {"rows": 1, "auc": 0.5}}}
    summary["alerts"][0].update(rule=EVIL, message=EVIL, severity=EVIL)
    summary["alerts"][0]["events"][-1]["pipeline_run_id"] = EVIL
    summary.update(model=EVIL, uri=EVIL, window=EVIL)
    page = render_report(summary)
    _check_page(page)
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.parametrize("windows", [365])
def test_large_report_stays_small(windows: int) -> None:
    summary = make_summary(windows=windows, features=30, alerts=20, seed=1)
    page = render_report(summary)
    size = len(page.encode("utf-8"))
    print(f"\nreport for {windows} windows x 30 features, 20 alerts: {size / 1e6:.3f} MB")
    assert size < 5_000_000
    assert size < 1_500_000  # the aim is about 1 MB
    svgs = _check_page(page)
    assert len(svgs) >= 1 + 30 * 2
    # No raw rows: nothing like a per-row dump; the histogram labels appear a bounded number of
    # times.
    assert page.count("feature_00") < 100


def test_long_series_are_thinned() -> None:
    summary = make_summary(windows=3000, features=2, alerts=0)
    page = render_report(summary)
    _check_page(page)
    assert len(page.encode("utf-8")) < 600_000


def test_write_report_is_atomic_and_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "delay.html"
    out = write_report(make_summary(windows=5, features=2, alerts=1), target)
    assert out == target and target.is_file()
    assert "delay" in target.read_text(encoding="utf-8")
    assert [p.name for p in target.parent.iterdir()] == ["delay.html"]
    write_report({"model": "second"}, str(target))
    text = target.read_text(encoding="utf-8")
    assert "Monitoring report: second" in text and "delay@champion" not in text
    assert [p.name for p in target.parent.iterdir()] == ["delay.html"]


def test_write_report_leaves_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "r.html"
    write_report({"model": "first"}, target)
    with pytest.raises(AttributeError):
        write_report(None, target)  # type: ignore[arg-type]
    assert "Monitoring report: first" in target.read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]
