"""Personal data marked in contracts: traced to model inputs, hashed or dropped in prediction
logs, and kept out of monitoring profiles and summaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

import plinth
from plinth.errors import ContractError
from plinth.governance.pii import (
    SALT_KEY,
    contract_rules,
    hash_value,
    hashing_secret,
    model_pii,
    pii_columns,
    protect,
)
from plinth.quality.contracts import Contract, parse_contract
from plinth.serving.prediction_log import LogEntry, LogPrivacy, to_arrow
from tests.serving.conftest import harness, served_home, ws

__all__ = ["harness", "served_home", "ws"]

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def _mark(ws: plinth.Workspace) -> None:
    """Contracts: the spine's x is hashed, the score table's key dropped and score hashed."""
    ws.quality.apply(Contract(table="obs", columns={"x": {"pii": "hash"}, "k": {}}))
    ws.quality.apply(
        Contract(table="scores", columns={"k": {"pii": "drop"}, "score": {"pii": True, "min": 0}})
    )


# -- contracts ---------------------------------------------------------------------------------


def test_contract_pii_field_is_validated_and_normalised():
    contract = parse_contract(
        "table: people\ncolumns:\n"
        "  email: {pii: hash}\n  phone: {pii: DROP}\n  name: {pii: true}\n"
        "  age: {pii: false, min: 0}\n  city: {}\n"
    )
    assert contract.pii_columns() == {"email": "hash", "phone": "drop", "name": "hash"}
    assert contract.spec()["columns"]["phone"]["pii"] == "drop"
    assert "pii" not in contract.spec()["columns"]["city"]
    assert [c.name for c in contract.row_checks()] == ["age.min"]  # pii is not a check
    with pytest.raises(ContractError, match=r"line 3: columns\.email\.pii.*'hash'.*'drop'"):
        parse_contract("table: people\ncolumns:\n  email: {pii: mask}\n")


# -- tracing inputs to contracted columns ----------------------------------------------------------


def test_model_inputs_keys_and_expressions_are_traced_to_contracts(ws):
    assert model_pii(ws, "risk", [1]) == {}
    _mark(ws)
    ws.features.apply(
        [
            plinth.FeatureView(
                "scaled",
                source="scores",
                entities=[plinth.Entity("k")],
                timestamp="ts",
                features={"double": "score * 2", "const": "1", "quoted": "'score'"},
            )
        ]
    )
    # Spine column x, copied feature, keyed entity (drop beats the spine's unmarked k).
    assert model_pii(ws, "risk", [1], ["x", "scores__score", "k"]) == {
        "x": "hash",
        "scores__score": "hash",
        "k": "drop",
    }
    # By default, the signature's inputs.
    assert model_pii(ws, "risk", [1]) == {"x": "hash", "scores__score": "hash"}
    found = pii_columns(ws, ["scaled__double", "scaled__const", "scaled__quoted", "other"])
    assert found == {"scaled__double": "hash"}
    # The contract bounds of copied features (what monitoring profiles use) come from here too.
    rules = contract_rules(ws, ["scores__score", "scaled__double", "x"])
    assert set(rules) == {"scores__score"} and rules["scores__score"].min == 0


# -- hashing ---------------------------------------------------------------------------------------


def test_protect_hashes_with_a_key_and_keeps_joins_possible():
    table = pa.table({"email": ["a@x.org", "b@x.org", "a@x.org", None], "n": [1, 2, 3, 4]})
    out = protect(table, {"email": "hash", "n": "hash"}, secret=b"s" * 32)
    emails = out.column("email").to_pylist()
    assert emails[0] == emails[2] != emails[1] and emails[3] is None
    assert emails[0] == hash_value("a@x.org", b"s" * 32)
    assert out.column("n").to_pylist()[0] == hash_value(1, b"s" * 32)
    assert out.schema.field("n").type == pa.string()
    other = protect(table, {"email": "hash"}, secret=b"t" * 32).column("email").to_pylist()
    assert other[0] != emails[0]  # keyed: another workspace's secret gives other hashes
    assert "a@x.org" not in str(out.to_pydict())
    dropped = protect(table, {"email": "drop"}, secret=b"")
    assert dropped.column_names == ["n"]
    # A log that stores the column with another type cannot take hashes: it is left out.
    existing = pa.schema([("n", pa.int64())])
    assert protect(table, {"n": "hash"}, secret=b"k", existing=existing).column_names == ["email"]


def test_hashing_secret_is_a_stored_salt_or_derived_from_the_key(tmp_path):
    settings = plinth.Settings(home=tmp_path / "a", user="t")
    with plinth.Workspace(settings=settings) as first:
        salt = hashing_secret(first)
        assert hashing_secret(first) == salt
        assert first.storage.read_bytes(SALT_KEY) == salt
    with plinth.Workspace(settings=plinth.Settings(home=tmp_path / "b", user="t")) as second:
        assert hashing_secret(second) != salt
    from plinth.governance.crypto import generate_key

    key = generate_key()
    keyed = plinth.Settings(home=tmp_path / "c", user="t", encryption_key=key)
    with plinth.Workspace(settings=keyed) as third:
        derived = hashing_secret(third)
        assert len(derived) == 32 and derived != salt
        assert not third.storage.exists(SALT_KEY)
        assert key.encode() not in derived


# -- the prediction log ----------------------------------------------------------------------------


def _entry(version: int = 1) -> LogEntry:
    return LogEntry(
        request_id="req-1",
        model="risk",
        version=version,
        route="primary",
        answered_at=T0,
        event_time=None,
        latency_ms=1.0,
        inputs={"x": [0.5, -1.0], "scores__score": [0.1, None], "k": [1, 2]},
        kinds={"x": "float", "scores__score": "float"},
        predictions=np.array([0.2, 0.3]),
        n=2,
    )


def test_log_writer_hashes_and_drops_before_writing(ws):
    plain = to_arrow([_entry()])
    assert LogPrivacy(ws).apply("risk", [_entry()], plain).equals(plain)  # nothing marked
    _mark(ws)
    privacy = LogPrivacy(ws)
    out = privacy.apply("risk", [_entry()], to_arrow([_entry()]))
    assert "k" not in out.column_names
    secret = hashing_secret(ws)
    assert out.column("x").to_pylist() == [hash_value(0.5, secret), hash_value(-1.0, secret)]
    assert out.column("scores__score").to_pylist() == [hash_value(0.1, secret), None]
    assert out.column("prediction").to_pylist() == [0.2, 0.3]
    assert out.column("request_id").to_pylist() == ["req-1", "req-1"]


def test_served_model_log_never_holds_marked_values(ws, harness):
    _mark(ws)
    keys, xs = [0, 1, 2, 3, 4], [0.5, -1.0, 0.25, 2.0, 0.125]

    async def body(client):
        answer = await client.post(
            "/v1/models/risk/predict",
            json={"records": [{"k": k, "x": x} for k, x in zip(keys, xs, strict=True)]},
        )
        assert answer.status_code == 200, answer.text
        return answer

    harness(log_predictions=True).run(body)
    logged = ws.lake.read("predictions__risk")
    assert logged.num_rows == len(keys)
    assert "k" not in logged.column_names
    secret = hashing_secret(ws)
    assert logged.column("x").to_pylist() == [hash_value(x, secret) for x in xs]
    assert logged.schema.field("scores__score").type == pa.string()
    assert all(len(v) == 64 for v in logged.column("scores__score").to_pylist() if v)


# -- monitoring ------------------------------------------------------------------------------------


def _traffic(ws, rows: int = 400) -> None:
    rng = np.random.default_rng(1)
    ws.lake.ingest(
        pa.table(
            {
                "request_id": [f"r-{i}" for i in range(rows)],
                "event_time": pa.array(
                    [T0 + timedelta(seconds=60 * i) for i in range(rows)],
                    pa.timestamp("us", tz="UTC"),
                ),
                "model_version": np.ones(rows, np.int64),
                "route": ["primary"] * rows,
                "latency_ms": rng.gamma(2.0, 1.0, rows),
                "x": rng.normal(size=rows),
                "scores__score": rng.choice([0.1, 0.2, 0.4, 0.5], size=rows),
                "prediction": rng.normal(size=rows),
            }
        ),
        table="predictions__risk",
        mode="append",
    )


def _assert_absent(summary: dict, column: str) -> None:
    assert column not in summary["histograms"]
    for window in summary["drift"]:
        assert column not in {c["column"] for c in window["columns"]}
    for window in summary["quality"]:
        assert column not in window["columns"]
    assert not [f for f in summary["facts"] if f".{column}." in f]


def test_monitoring_profile_and_summary_leave_out_marked_inputs(ws):
    from plinth.monitoring.facts import Target
    from plinth.monitoring.profile import ensure_profile
    from plinth.monitoring.summary import monitoring_summary

    ws.quality.apply(Contract(table="scores", columns={"score": {"pii": "hash"}}))
    profile = ensure_profile(ws, "risk@champion")
    assert "scores__score" not in profile.references and "x" in profile.references
    assert profile.inputs == ["x", "scores__score"]
    _traffic(ws)
    summary = monitoring_summary(ws, Target("risk@champion", window="1d"))
    _assert_absent(summary, "scores__score")
    assert "x" in summary["histograms"] and "drift.x.psi" in summary["facts"]


def test_summary_leaves_out_inputs_marked_after_the_profile_was_fitted(ws):
    from plinth.monitoring.facts import Target
    from plinth.monitoring.profile import ensure_profile
    from plinth.monitoring.summary import monitoring_summary

    assert "scores__score" in ensure_profile(ws, "risk@champion").references
    _traffic(ws)
    before = monitoring_summary(ws, Target("risk@champion", window="1d"))
    assert "scores__score" in before["histograms"]
    ws.quality.apply(Contract(table="scores", columns={"score": {"pii": "drop"}}))
    after = monitoring_summary(ws, Target("risk@champion", window="1d"))
    _assert_absent(after, "scores__score")
    assert "x" in after["histograms"]


def test_quality_report_of_a_table_leaves_out_marked_columns(tmp_path):
    from plinth.quality.observability import summarize
    from plinth.quality.report import render_html

    settings = plinth.Settings(home=tmp_path / "ws", user="t")
    with plinth.Workspace(settings=settings) as ws:
        ws.quality.apply(Contract(table="people", columns={"email": {"pii": "drop"}}))
        for seed in range(2):
            ws.lake.ingest(
                pa.table(
                    {
                        "email": [f"person{i % 3}@example.org" for i in range(30)],
                        "age": [20 + (i + seed) % 40 for i in range(30)],
                    }
                ),
                table="people",
            )
        summary = summarize(ws.lake, "people")
        assert [s.column for s in summary.shifts] == ["age"]
        page = render_html(summary)
        assert "example.org" not in page
