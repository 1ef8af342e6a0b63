"""The documentation bundle: model card, datasheets, the nine points of Annex IV, the changes
against the previous version, escaped HTML, and the ``plinth docs`` command."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

import plinth
from plinth.cli.main import app, main
from plinth.cli.output import console
from plinth.errors import ConfigError
from plinth.governance.datasheet import NEEDS_HUMAN, QUESTIONS, SECTIONS, build_datasheet
from plinth.governance.docs_bundle import load_answers, to_html, write_docs
from plinth.quality.profiles import get_profile
from plinth.registry.card_markdown import cell

T0 = datetime(2024, 1, 1, tzinfo=UTC)
EVIL = "<script>alert('obs')</script><img src=x onerror=alert(1)>"
CONTRACT = f"""table: obs
description: "{EVIL} Hourly observations & labels"
columns:
  k: {{not_null: true}}
  x: {{min: -10, max: 10}}
  label: {{allowed: [0, 1]}}
"""


def _csv(path: Path, start: int, rows: int, seed: int) -> Path:
    """Observations: key, hourly time, x (every tenth missing), label (one out of contract)."""
    rng = np.random.default_rng(seed)
    lines = ["k,ts,x,label"]
    for i in range(start, start + rows):
        x = rng.normal()
        label = 5 if i == start + 7 else int(x > 0)
        when = (T0 + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(f"{i % 5},{when},{'' if i % 10 == 3 else f'{x:.4f}'},{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _register(ws: plinth.Workspace, c: float, auc: float) -> object:
    from sklearn.linear_model import LogisticRegression

    training = ws.features.historical("obs", "svc", timestamp="ts")
    frame = training.table.to_pandas()  # type: ignore[attr-defined]
    inputs = frame[["x", "scores__score"]].fillna(0.0)
    model = LogisticRegression(C=c).fit(inputs, frame["label"].clip(0, 1))
    with ws.run("clf-exp", params={"C": c}, capture=False) as run:
        run.use(training)
        run.log_metrics({"auc": auc})
        return run.log_model(
            model, "clf", features="svc", tags={"intended_use": "Demonstration only."}
        )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with table 'obs' (a contract, two CSV ingests) and 'scores', and model
    'clf' at version 1 (trained on obs@0) and version 2 (trained on obs@1)."""
    root = tmp_path_factory.mktemp("docs")
    folder = root / "ws"
    with plinth.Workspace(settings=plinth.Settings(home=folder, user="tester")) as ws:
        ws.quality.apply(CONTRACT)
        ws.lake.ingest(str(_csv(root / "a.csv", 0, 40, 0)), table="obs")
        ws.lake.ingest(
            pa.table({"k": pa.array(range(5), pa.int64()),
                      "ts": pa.array([T0] * 5, pa.timestamp("us", tz="UTC")),
                      "score": [0.1, 0.2, None, 0.4, 0.5]}),
            table="scores",
        )  # fmt: skip
        ws.features.apply(
            [
                plinth.FeatureView("scores", source="scores", entities=[plinth.Entity("k")],
                                   timestamp="ts", features=["score"],
                                   description="Scores <b>by</b> key."),
                plinth.FeatureService("svc", features=["scores"]),
            ]
        )  # fmt: skip
        _register(ws, 1.0, 0.7)
        ws.lake.ingest(str(_csv(root / "b.csv", 40, 40, 1)), table="obs")
        _register(ws, 0.5, 0.74)
    return folder


@pytest.fixture(scope="module")
def bundles(home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The bundles of both versions, written once."""
    out = tmp_path_factory.mktemp("bundles")
    with plinth.Workspace(settings=plinth.Settings(home=home, user="tester")) as ws:
        return {
            "v1": write_docs(ws, "clf:1", out / "v1"),
            "v2": write_docs(ws, "clf:2", out / "v2"),
        }


def _read(bundle: object, name: str) -> str:
    return (bundle.folder / name).read_text()  # type: ignore[attr-defined]


def test_write_docs_writes_every_file(bundles):
    bundle = bundles["v2"]
    names = {p.name for p in bundle.files}
    pages = ["model-card", "annex-iv", "datasheet-obs@1", "datasheet-scores@0", "CHANGES"]
    assert names == {f"{p}.{ext}" for p in pages for ext in ("md", "html")} | {"index.html"}
    assert all(p.is_file() and p.stat().st_size > 0 for p in bundle.files)
    assert sorted(p.name for p in bundle.folder.iterdir()) == sorted(names)  # no temp files left
    data = json.loads(json.dumps(bundle.to_dict()))
    assert data["uri"] == "models:/clf/2" and data["previous_version"] == 1
    assert [d["ref"] for d in data["datasheets"]] == ["obs@1", "scores@0"]
    card = _read(bundle, "model-card.md")
    assert card.startswith("# Model card: clf version 2")
    assert "## EU AI Act Annex IV" not in card  # the nine points live in annex-iv.md
    assert "[datasheet of obs@1](datasheet-obs@1.md)" in card
    index = _read(bundle, "index.html")
    for page in pages:
        assert f'href="{page}.html"' in index and f'href="./{page}.md"' in index


def test_annex_iv_has_all_nine_points(bundles):
    bundle = bundles["v2"]
    text = _read(bundle, "annex-iv.md")
    headings = re.findall(r"^## (\d)\. ", text, flags=re.MULTILINE)
    assert headings == [str(n) for n in range(1, 10)]
    for title in ("General description", "development process", "Monitoring, functioning",
                  "Appropriateness of the performance metrics", "Risk management system",
                  "Changes through the lifecycle", "Harmonised standards",
                  "EU declaration of conformity", "Post-market monitoring"):  # fmt: skip
        assert title in text, title
    counts = bundle.annex_counts()
    assert counts["sections"] == 9 and counts["filled"] + counts["needs_human"] == 9
    assert 0 < counts["fields_filled"] < counts["fields"]
    assert "- **Intended purpose:** Demonstration only. _(tag `intended_use`)_" in text
    assert f"- **Provider:** **{NEEDS_HUMAN}.** Give it as `annex_iv.provider`" in text
    assert "obs@1 (" in text and "[obs@1](datasheet-obs@1.md)" in text
    assert "param C: 1.0 → 0.5" in text and "data table:obs: 0 → 1" in text
    points = {p["id"]: p for p in bundle.annex_iv}
    assert points["declaration_of_conformity"]["status"] == "needs_human"
    assert points["lifecycle_changes"]["status"] == "filled"


def test_answers_fill_the_human_fields(home, tmp_path):
    answers = tmp_path / "answers.yaml"
    answers.write_text(
        "annex_iv:\n  provider: Example Ltd\n  intended_use: ignored, the tag wins\n"
        "datasheets:\n  obs:\n    distribution:\n      license: CC0 1.0\n"
        "    motivation.purpose: Teaching.\n"
    )
    with plinth.Workspace(settings=plinth.Settings(home=home, user="tester")) as ws:
        bundle = write_docs(ws, "clf", tmp_path / "out", answers=answers)
    annex = _read(bundle, "annex-iv.md")
    assert "- **Provider:** Example Ltd _(answers file `annex_iv.provider`)_" in annex
    assert "Demonstration only." in annex and "ignored" not in annex
    sheet = _read(bundle, "datasheet-obs@1.md")
    assert "CC0 1.0\n\n_Source: answers file._" in sheet and "Teaching." in sheet
    assert "(question id `distribution.license`)" not in sheet


def test_datasheet_has_the_seven_sections_and_real_numbers(home, bundles):
    text = _read(bundles["v2"], "datasheet-obs@1.md")
    found = re.findall(r"^## \d\. (.+)$", text, flags=re.MULTILINE)
    assert found == [title for _, title in SECTIONS]
    assert len(re.findall(r"^### ", text, flags=re.MULTILINE)) == len(QUESTIONS)
    with plinth.Workspace(settings=plinth.Settings(home=home, user="tester")) as ws:
        profile = get_profile(ws.catalog, "obs", 1)
        info = ws.lake.version("obs", 1)
        training_set = ws.models.get("clf:2").training_set_id
    x = profile["columns"]["x"]
    assert info.row_count == 78  # 80 rows read, one quarantined per ingest
    assert "78 rows and 4 columns in version 1" in text
    assert f"| `x` | double | numeric | {x['null_fraction']:.1%} | {cell(x['distinct'])} |" in text
    assert cell(x["mean"]) in text and cell(x["std"]) in text
    assert f"| `x` | {x['nulls']} | {x['null_fraction']:.1%} |" in text  # missing values
    digest = hashlib.sha256((home.parent / "b.csv").read_bytes()).hexdigest()
    assert f"`sha256:{digest}`" in text
    assert "| `label.allowed` | error | 1 |" in text  # the latest result's failing rows
    assert "1 row(s) failed an error-severity check" in text and "`obs__quarantine`" in text
    assert f"`{training_set}`" in text and "`models:/clf/2`" in text
    assert "| 1 | append | 78 | 39 |" in text and "this version" in text
    assert "`label.allowed` | error | `" in text  # the contract's rules
    scores = _read(bundles["v2"], "datasheet-scores@0.md")
    assert "- `scores` v1: Scores <b>by</b> key." in scores
    assert "`models:/clf/1`" in scores and "`models:/clf/2`" in scores


def test_personal_data_columns_show_no_values(tmp_path):
    from plinth.quality.contracts import Contract

    if not hasattr(Contract, "pii_columns"):
        pytest.skip("data contracts cannot mark personal data in this tree")
    settings = plinth.Settings(home=tmp_path / "ws", user="tester")
    with plinth.Workspace(settings=settings) as ws:
        ws.quality.apply("table: people\ncolumns:\n  email: {pii: hash}\n  born: {pii: drop}\n")
        ws.lake.ingest(
            pa.table({"email": ["ann@example.com", "bob@example.com"],
                      "born": pa.array([T0, T0 - timedelta(days=9000)], pa.timestamp("us", "UTC")),
                      "visits": [3, 4]}),
            table="people",
        )  # fmt: skip
        text = build_datasheet(ws, "people", 0).markdown()
    assert "example.com" not in text and "1999" not in text and "2024-01-01" not in text
    assert (
        "| `email` | string | categorical | 0.0% | 2 | - | - | - | - | withheld (personal data) |"
        in text
    )
    assert "marks these columns as personal data: `born` (drop), `email` (hash)" in text
    assert "| `visits` | int64 | numeric | 0.0% | 2 | 3 | 4 |" in text


def test_needs_a_human_answer_where_nothing_is_known(bundles):
    text = _read(bundles["v2"], "datasheet-scores@0.md")
    for qid in ("motivation.purpose", "distribution.license", "maintenance.owner"):
        assert f"**{NEEDS_HUMAN}** (question id `{qid}`)." in text
    # scores has no contract: its checks are stated, results and quarantine are unknown
    assert "No data contract is recorded for table `scores`" in text
    assert f"**{NEEDS_HUMAN}** (question id `composition.instances`)." in text
    assert f"**{NEEDS_HUMAN}** (question id `preprocessing.quarantine`)." in text
    annex = _read(bundles["v2"], "annex-iv.md")
    assert f"- **Putting into service:** **{NEEDS_HUMAN}.** Not recorded: no deployment" in annex


def test_changes_of_version_2_diff_version_1(bundles):
    text = _read(bundles["v2"], "CHANGES.md")
    assert text.startswith("# Changes: clf version 2\n\nAgainst version 1 (`models:/clf/1`).")
    assert "| param | C | 1.0 | 0.5 |" in text and "| data | table:obs | 0 | 1 |" in text
    assert "## datasheet-obs@1.md\n\nAgainst version 1's `datasheet-obs@0.md`:" in text
    assert "## datasheet-scores@0.md\n\nUnchanged from datasheet-scores@0.md." in text
    assert "--- v1/datasheet-obs@0.md\n+++ v2/datasheet-obs@1.md" in text
    assert "\n-# Datasheet: obs@0\n" in text and "\n+# Datasheet: obs@1\n" in text
    assert "\n-| `x` | double | numeric |" in text  # the statistics changed with the new rows
    assert "--- v1/annex-iv.md\n+++ v2/annex-iv.md" in text
    assert "```diff" in text
    html = _read(bundles["v2"], "CHANGES.html")
    assert '<code class="language-diff">' in html
    first = _read(bundles["v1"], "CHANGES.md")
    assert "Version 1 is the first version of clf; there is nothing to compare against." in first


def test_html_is_self_contained_and_escaped(bundles):
    for path in bundles["v2"].files:
        if path.suffix != ".html":
            continue
        page = path.read_text()
        assert page.startswith("<!DOCTYPE html>") and "<style>" in page
        assert "<script" not in page and "<img" not in page and "<b>" not in page
        assert "http://" not in page and "https://" not in page
        assert 'href="datasheet-obs@1.md"' not in page  # links point at the HTML pages
    sheet = _read(bundles["v2"], "datasheet-obs@1.html")
    assert "&lt;script&gt;alert(&#x27;obs&#x27;)&lt;/script&gt;" in sheet or (
        "&lt;script&gt;alert('obs')&lt;/script&gt;" in sheet
    )
    assert "Hourly observations &amp; labels" in sheet
    assert "&lt;b&gt;by&lt;/b&gt;" in _read(bundles["v2"], "datasheet-scores@0.html")
    assert 'href="javascript' not in to_html("[x](javascript:alert(1))", "t")


def test_bad_answers_are_refused_with_the_allowed_keys(tmp_path):
    with pytest.raises(ConfigError, match="unknown Annex IV key"):
        load_answers({"annex_iv": {"owner": "x"}})
    with pytest.raises(ConfigError, match=r"distribution\.licence.*Use: motivation\.purpose"):
        load_answers({"datasheets": {"obs": {"distribution": {"licence": "x"}}}})
    with pytest.raises(ConfigError, match="unknown section"):
        load_answers({"tags": {}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("annex_iv: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_answers(bad)


@pytest.fixture
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "_width", 200)


@pytest.mark.usefixtures("_wide_console")
def test_cli_writes_the_bundle_and_prints_the_counts(home, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["docs", "clf@latest", "-o", str(out), "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert f"Wrote the documentation of clf version 2 to {out} (11 files):" in result.output
    assert re.search(r"Annex IV: 9 sections; \d filled from the catalog and tags, \d need a "
                     r"human answer \(\d+ of \d+ fields known\)\.", result.output)  # fmt: skip
    assert "Datasheet of obs@1: " in result.output
    assert "CHANGES.md: compared with version 1." in result.output
    assert (out / "annex-iv.html").is_file()
    result = CliRunner().invoke(
        app, ["docs", "clf:1", "-o", str(tmp_path / "j"), "--home", str(home), "--json"]
    )
    data = json.loads(result.output)
    assert data["version"] == 1 and data["annex_iv"]["sections"] == 9
    assert data["previous_version"] is None


def test_cli_default_folder(home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["docs", "clf:1", "--home", str(home), "--json"]) == 0
    assert (tmp_path / "model-docs" / "clf-v1" / "index.html").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["docs", "nope"], "No model is registered under the name 'nope'."),
        (["docs", "clf:9"], "Model 'clf' has no version 9."),
        (["docs", "clf", "--answers", "missing.yaml"], "answers file"),
    ],
)
def test_cli_errors_exit_1_without_traceback(home, tmp_path, capsys, args, message):
    out = tmp_path / "never"
    code = main([*args, "--home", str(home), "-o", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    assert message in captured.err and "Error:" in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not out.exists()


def test_an_output_that_is_a_file_is_refused(home, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("mine")
    assert main(["docs", "clf", "--home", str(home), "-o", str(taken)]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err
    assert taken.read_text() == "mine"


def test_cli_usage_error_exits_2(capsys):
    assert main(["docs"]) == 2
