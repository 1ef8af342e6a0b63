"""Model cards: exact training table versions, metrics and slices, limitations, lineage and
the EU AI Act Annex IV fields, as JSON and as Markdown."""

from __future__ import annotations

import json

from plinth._core.clock import utcnow
from plinth.catalog.models import GateDecision
from plinth.registry.card import TO_COMPLETE, split_metrics
from plinth.registry.card_markdown import cell, table
from tests.registry.conftest import build_training, fit_logistic, frame_of


def _register(ws):
    training = build_training(ws, spine_versions=2)
    model = fit_logistic(training)
    with ws.run("clf-exp", params={"C": 1.0}, tags={"users": "ops analysts"}, capture=False) as run:
        run.use(training)
        run.log_metrics({"auc": 0.71, "slice/k=1/auc": 0.6, "slice/k=2/auc": 0.8,
                         "slice/k=2/log_loss": 0.4})  # fmt: skip
        info = run.log_model(
            model,
            "clf",
            features="svc",
            description="Predicts the label from x and the entity's score.",
            tags={"intended_use": "Demonstration only.", "standards": "ISO/IEC 42001"},
        )
    return training, info


def test_card_names_the_exact_training_table_versions(workspace):
    training, _ = _register(workspace)
    card = workspace.models.card("clf")
    data = card.to_dict()
    assert (card.name, card.version) == ("clf", 1)
    tables = {(t["table"], t["version"]): t for t in data["training_data"]["tables"]}
    assert set(tables) == {("obs", 1), ("scores", 0)}
    assert tables[("obs", 1)]["role"] == "spine" and tables[("obs", 1)]["row_count"] == 120
    assert tables[("scores", 0)]["row_count"] == 5
    assert tables[("scores", 0)]["profile"]["columns"][2]["null_fraction"] == 0.2
    assert data["training_data"]["training_set"]["id"] == training.id
    assert data["training_data"]["training_set"]["row_count"] == 120
    assert data["training_data"]["feature_service"] == {"name": "svc", "version": 1}
    assert data["training_data"]["feature_views"] == {"scores": 1}
    text = card.markdown()
    assert "| obs | 1 | 120 |" in text and "| scores | 0 | 5 |" in text
    assert f"Training set `{training.id}`: 120 rows" in text
    assert "### Profile of obs@1" in text
    json.dumps(data)  # JSON-ready


def test_card_sections_metrics_limitations_lineage_and_annex(ws):
    training, info = _register(ws)
    with ws.catalog.session() as session:
        session.add(
            GateDecision(
                model_name="clf", candidate_version=1, champion_version=None, policy="auc > 0.7",
                passed=True, numbers={"auc": 0.71}, reasons=["no champion yet"],
                decided_at=utcnow(), decided_by="ci",
            )
        )  # fmt: skip
    ws.models.set_alias("clf", "champion", 1, reason="first model")
    data = ws.models.card("models:/clf@champion").to_dict()
    model = data["model"]
    assert model["uri"] == "models:/clf/1" and model["flavor"] == "sklearn"
    assert model["run_id"] == info.run_id and model["aliases"] == ["champion"]
    assert model["library"] == "scikit-learn"
    assert data["intended_use"]["intended_use"] == "Demonstration only."
    assert data["intended_use"]["users"] == "ops analysts"  # from the run's tags
    assert data["evaluation"]["metrics"] == {"auc": 0.71}
    assert data["evaluation"]["slices"] == {
        "k=1": {"auc": 0.6},
        "k=2": {"auc": 0.8, "log_loss": 0.4},
    }
    limitations = " ".join(data["limitations"])
    assert "Trained on data from 2024-01-01T00:00:00+00:00" in limitations
    assert "column 'ts'" in limitations
    upstream = {(e["source"], e["relation"]) for e in data["lineage"]["upstream"]}
    assert (f"training_set:{training.id}", "trained") in upstream
    assert ("table_version:obs@1", "spine_of") in upstream
    assert data["lifecycle"]["gates"][0]["passed"] is True
    assert data["lifecycle"]["alias_events"][0]["reason"] == "first model"
    sections = {s["id"]: {f["name"]: f for f in s["fields"]} for s in data["annex_iv"]}
    assert list(sections) == [
        "general_description",
        "development_process",
        "data_governance",
        "metrics_accuracy",
        "risk_management",
        "human_oversight",
        "lifecycle",
        "standards",
    ]
    general = sections["general_description"]
    assert general["Intended purpose"]["value"] == "Demonstration only."
    assert general["Intended purpose"]["source"] == "tag:intended_use"
    assert general["Provider"] == {"name": "Provider", "value": TO_COMPLETE, "completed": False,
                                   "source": None}  # fmt: skip
    assert "obs@1 (120 rows)" in sections["data_governance"]["Training data"]["value"]
    assert "scores v1" in sections["data_governance"]["Data preparation"]["value"]
    assert sections["metrics_accuracy"]["Accuracy for specific groups"]["completed"]
    assert sections["standards"]["Harmonised standards applied"]["value"] == "ISO/IEC 42001"
    assert "gate passed" in sections["human_oversight"]["Recorded promotion decisions"]["value"]
    assert "C = 1.0" in sections["development_process"]["Design choices and parameters"]["value"]
    text = ws.models.card("clf:1").markdown()
    for heading in (
        "# Model card: clf version 1",
        "## Model details",
        "## Intended use",
        "## Training data",
        "## Evaluation",
        "### Slices",
        "## Limitations",
        "## Lineage",
        "## Aliases and promotion",
        "## EU AI Act Annex IV technical documentation",
        "### 2(d). Data and data governance",
    ):
        assert heading in text
    assert "| k=2 | 0.8 | 0.4 |" in text and "| k=1 | 0.6 | - |" in text
    assert f"- **Provider:** _{TO_COMPLETE}_" in text


def test_card_without_provenance_lists_what_is_unknown(ws):
    training = build_training(ws)
    model = fit_logistic(training)
    ws.models.register(model, "bare", signature=None)
    data = ws.models.card("bare").to_dict()
    assert data["training_data"]["training_set"] is None and data["run"] is None
    limitations = "\n".join(data["limitations"])
    assert "No training set is linked" in limitations
    assert "No evaluation metrics" in limitations and "no signature" in limitations
    annex = {f["name"]: f for s in data["annex_iv"] for f in s["fields"]}
    assert not annex["Training data"]["completed"] and not annex["Methods and steps"]["completed"]
    assert "No training set is linked to this version." in ws.models.card("bare").markdown()


def test_missing_features_are_named_as_limitations(ws):
    training = build_training(ws)
    inputs, labels = frame_of(training)
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(inputs, labels)
    table = training.table
    import pyarrow as pa

    holes = pa.array([None if i % 2 else v for i, v in enumerate(table.column("x").to_pylist())])
    training = type(training)(
        table.set_column(table.schema.get_field_index("x"), "x", holes),
        training.id,
        training.features,
        training.inputs,
    )
    ws.models.register(model, "holes", training_set=training)
    limitations = ws.models.card("holes").to_dict()["limitations"]
    assert any("Input 'x' is missing in 50% of the training rows" in item for item in limitations)


def test_helpers():
    assert split_metrics({"auc": 1.0, "slice/a/b/auc": 0.5, "slice/x": 2.0}) == (
        {"auc": 1.0, "slice/x": 2.0},
        {"a/b": {"auc": 0.5}},
    )
    assert cell(True) == "yes" and cell(1234567) == "1,234,567" and cell("") == "-"
    assert table(["a", "b"], [[None, 0.5]])[-1] == "| - | 0.5 |"


def test_time_range_of_a_personal_data_column_is_withheld(ws):
    from plinth.quality.contracts import Contract

    _register(ws)  # version 1, before the mark
    assert "ts" in ws.models.get("clf:1").details["training_data"]["time_range"]
    ws.quality.apply(Contract(table="obs", columns={"ts": {"pii": "hash"}}))
    training = build_training(ws, spine_versions=2)
    info = ws.models.register(fit_logistic(training), "clf", training_set=training)
    assert info.details["training_data"]["time_range"] == {}  # never stored
    for version in (1, info.version):  # and never shown, whenever the mark came
        card = ws.models.card(f"clf:{version}")
        assert card.to_dict()["training_data"]["time_range"] == {}
        assert "(column 'ts')" not in card.markdown()
        assert not any("'ts'" in line for line in card.to_dict()["limitations"])
