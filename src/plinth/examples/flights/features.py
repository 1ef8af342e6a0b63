"""Feature definitions of the flights example, and the steps that use them.

The weather at a flight's origin airport as of its scheduled departure hour (at most 3 hours
old), and the plane's year, seats and engines, joined point-in-time onto every flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from plinth.features.definitions import Entity, FeatureService, FeatureView

if TYPE_CHECKING:
    from plinth.features.historical import TrainingSetResult
    from plinth.features.service import MaterializeResult
    from plinth.workspace import Workspace

origin = Entity("origin", join_keys=["origin"], description="A New York departure airport.")
plane = Entity("plane", join_keys=["tailnum"], description="An aircraft, by tail number.")

weather = FeatureView(
    "weather",
    source="weather",
    entities=[origin],
    timestamp="time_hour",
    ttl="3h",
    features=["temp", "dewp", "humid", "wind_speed", "precip", "pressure", "visib"],
    description="Hourly weather at the origin airport.",
)
planes = FeatureView(
    "planes",
    source="planes",
    entities=[plane],
    timestamp=None,
    features={"year": "year", "seats": "seats", "engines": "engines"},
    description="Static facts about each plane.",
)
delay = FeatureService("delay", [weather, planes], description="Inputs of the delay model.")

DEFINITIONS = [origin, plane, weather, planes, delay]


@dataclass(frozen=True)
class FeatureSteps:
    """What the feature steps of the quickstart produced."""

    training_set: TrainingSetResult
    materialized: list[MaterializeResult]


def build_features(ws: Workspace) -> FeatureSteps:
    """Apply the definitions, build the flights training set and materialize online.

    Example:
        >>> # build_features(plinth.Workspace()).training_set.table.num_rows
    """
    ws.features.apply(DEFINITIONS)
    training = ws.features.historical("flights", delay, timestamp="time_hour")
    materialized = [ws.features.materialize(view.name) for view in (weather, planes)]
    return FeatureSteps(training, materialized)
