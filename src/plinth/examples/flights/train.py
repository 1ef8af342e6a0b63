"""Train the flights delay classifier: LightGBM on the point-in-time training set.

The target is an arrival delay over 15 minutes. The model learns from January to May and is
validated on June (a time-based split, as it would be deployed); July to December is left for
serving and monitoring. Each boosting round's validation AUC and log loss are logged as metric
curves; the final AUC, log loss, accuracy and calibration are logged with the calibration
curve, the feature importances and the model as artifacts.

Runs in-process from the quickstart, or as a script under any launcher::

    plinth train src/plinth/examples/flights/train.py --param learning_rate=0.1
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from plinth.errors import ConfigError
from plinth.tracking.evaluation import binary_report, calibration

if TYPE_CHECKING:
    import pandas as pd

    from plinth.features.historical import TrainingSetResult
    from plinth.workspace import Workspace

EXPERIMENT = "delay-model"
TARGET = "delayed"
DELAY_MINUTES = 15
TRAIN_END = datetime(2013, 6, 1, tzinfo=UTC)
VALID_END = datetime(2013, 7, 1, tzinfo=UTC)
#: The promotion gate scores candidates on July, after the months the model saw.
HOLDOUT_END = datetime(2013, 8, 1, tzinfo=UTC)
FLIGHT_COLUMNS = ["hour", "distance"]
CATEGORICAL = ["carrier", "origin"]
DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 100,
    "feature_fraction": 0.9,
    "rounds": 300,
    "early_stopping": 30,
}


@dataclass(frozen=True)
class Split:
    """Model inputs and labels of the training, validation and held-out months."""

    train: pd.DataFrame
    valid: pd.DataFrame
    y_train: np.ndarray
    y_valid: np.ndarray
    features: list[str]
    holdout: pd.DataFrame

    def holdout_frame(self) -> pd.DataFrame:
        """July's model inputs with the ``delayed`` label, for the promotion gate."""
        return self.holdout


def split(training: TrainingSetResult) -> Split:
    """Label the flights, keep those that arrived, split January-May / June.

    Example:
        >>> # split(ws.features.training_set("ts_...")).train.shape
    """
    frame = training.table.to_pandas()
    frame = frame[frame["arr_delay"].notna()]
    when = frame["time_hour"]
    features = [*FLIGHT_COLUMNS, *CATEGORICAL, *training.features]
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise ConfigError(
            f"The training set lacks column(s) {', '.join(missing)}.",
            hint="Build it from the flights table with the 'delay' feature service.",
        )
    inputs = frame[features].copy()
    for column in CATEGORICAL:
        inputs[column] = inputs[column].astype("category")
    label = (frame["arr_delay"] > DELAY_MINUTES).to_numpy(dtype=np.float64)
    train_rows = (when < TRAIN_END).to_numpy()
    valid_rows = ((when >= TRAIN_END) & (when < VALID_END)).to_numpy()
    holdout_rows = ((when >= VALID_END) & (when < HOLDOUT_END)).to_numpy()
    holdout = inputs[holdout_rows].assign(**{TARGET: label[holdout_rows].astype(np.int64)})
    return Split(
        inputs[train_rows],
        inputs[valid_rows],
        label[train_rows],
        label[valid_rows],
        features,
        holdout.reset_index(drop=True),
    )


def train_delay_model(
    ws: Workspace, training: TrainingSetResult, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Train, evaluate and track the LightGBM delay model; return the run id and metrics.

    Example:
        >>> # train_delay_model(ws, ws.features.training_set("ts_..."))["metrics"]["auc"]
    """
    import lightgbm as lgb

    settings = {**DEFAULTS, **(params or {})}
    data = split(training)
    booster_params = {
        "objective": "binary",
        "metric": ["auc", "binary_logloss"],
        "learning_rate": float(settings["learning_rate"]),
        "num_leaves": int(settings["num_leaves"]),
        "min_data_in_leaf": int(settings["min_data_in_leaf"]),
        "feature_fraction": float(settings["feature_fraction"]),
        "num_threads": 2,
        "seed": 13,
        "deterministic": True,
        "verbosity": -1,
    }
    with ws.run(EXPERIMENT, params={**settings, "model": "lightgbm"}) as run:
        run.use(training)
        run.set_tags(
            {"target": f"arr_delay > {DELAY_MINUTES}", "split": "train Jan-May, valid Jun"}
        )
        train_set = lgb.Dataset(data.train, data.y_train, categorical_feature=CATEGORICAL)
        valid_set = lgb.Dataset(data.valid, data.y_valid, reference=train_set)
        curves: dict[str, Any] = {}
        booster = lgb.train(
            booster_params,
            train_set,
            num_boost_round=int(settings["rounds"]),
            valid_sets=[valid_set],
            valid_names=["valid"],
            callbacks=[
                lgb.record_evaluation(curves),
                lgb.early_stopping(int(settings["early_stopping"]), verbose=False),
            ],
        )
        for step, (auc, loss) in enumerate(
            zip(curves["valid"]["auc"], curves["valid"]["binary_logloss"], strict=True)
        ):
            run.log_metrics({"valid_auc": auc, "valid_log_loss": loss}, step=step)
        scores = booster.predict(data.valid, num_iteration=booster.best_iteration)
        metrics = binary_report(data.y_valid, scores)
        run.log_metrics(
            {
                "auc": metrics["auc"],
                "log_loss": metrics["log_loss"],
                "accuracy": metrics["accuracy"],
                "ece": metrics["ece"],
                "best_iteration": booster.best_iteration,
                "train_rows": len(data.y_train),
                "valid_rows": len(data.y_valid),
            }
        )
        run.log_artifact(calibration(data.y_valid, scores).as_dict(), "calibration.json")
        importance = booster.feature_importance(importance_type="gain")
        run.log_artifact(
            dict(zip(data.features, (float(v) for v in importance), strict=True)),
            "feature_importance.json",
        )
        run.log_artifact(booster.model_to_string(), "model.txt")
    return {
        "run_id": run.id,
        "metrics": metrics,
        "best_iteration": booster.best_iteration,
        "model": booster,
        "example": data.valid.head(20),
    }


def newest_training_set(ws: Workspace) -> TrainingSetResult:
    """The most recently recorded training set of the workspace (the quickstart's).

    Example:
        >>> # newest_training_set(plinth.Workspace()).table.num_rows
    """
    from sqlalchemy import select

    from plinth.catalog.models import TrainingSet

    with ws.catalog.session() as session:
        newest = session.scalars(
            select(TrainingSet.id).order_by(TrainingSet.created_at.desc()).limit(1)
        ).first()
    if newest is None:
        raise ConfigError(
            "No training set is recorded in this workspace.",
            hint="Run 'plinth quickstart' first.",
        )
    return ws.features.training_set(newest)


def main() -> None:
    """Train on the newest recorded flights training set (script entry point)."""
    import plinth

    ws = plinth.Workspace()
    result = train_delay_model(ws, newest_training_set(ws), _params())
    print(f"run {result['run_id']}: validation AUC {result['metrics']['auc']:.3f}")


def _params() -> dict[str, Any]:
    try:
        from plinth.training import params
    except ImportError:
        return {}
    return params(DEFAULTS)


if __name__ == "__main__":
    main()
