"""Serve the delay model and replay July-December flights against it, hour by hour.

The online store is replayed as it would have stood: for each chosen hour the weather view is
materialized up to that hour, then the flights scheduled in it are sent by entity key only
(carrier, origin, tail number, hour, distance) with ``as_of`` set to the hour, so the server
reads the weather of that hour (TTL 3 h) and the plane's facts from the online store. Each
request's id is the flight's id, so outcomes can be joined to the prediction log later. At
the end the weather view is materialized to its newest values again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from plinth.workspace import Workspace

SERVE_START = datetime(2013, 7, 1, tzinfo=UTC)
SERVE_END = datetime(2014, 1, 1, tzinfo=UTC)
REQUEST_FIELDS = ("hour", "distance", "carrier", "origin", "tailnum")


@dataclass(frozen=True)
class ReplayResult:
    """What the replay sent and how fast it was answered."""

    hours: int
    requests: int
    answered: int
    statuses: dict[str, int]
    latencies_ms: np.ndarray

    def percentiles(self) -> dict[str, float]:
        """p50, p95 and p99 latency in milliseconds."""
        values = np.percentile(self.latencies_ms, [50, 95, 99]) if self.answered else [np.nan] * 3
        return {"p50": float(values[0]), "p95": float(values[1]), "p99": float(values[2])}


def flight_id(row: dict[str, Any]) -> str:
    """A flight's id: date, carrier, flight number and origin.

    Example:
        >>> flight_id({"year": 2013, "month": 7, "day": 1, "carrier": "UA", "flight": 1545,
        ...            "origin": "EWR"})
        '2013-07-01-UA1545-EWR'
    """
    return (
        f"{row['year']:04d}-{row['month']:02d}-{row['day']:02d}-"
        f"{row['carrier']}{row['flight']}-{row['origin']}"
    )


def replay_hours(every_days: int = 6, hours: tuple[int, ...] = (8, 17)) -> list[datetime]:
    """The hours replayed: ``hours`` of every ``every_days``-th day from July to December.

    Example:
        >>> [h.isoformat() for h in replay_hours(every_days=100, hours=(8,))]
        ['2013-07-01T08:00:00+00:00', '2013-10-09T08:00:00+00:00']
    """
    out = []
    day = SERVE_START
    while day < SERVE_END:
        out.extend(day + timedelta(hours=h) for h in hours)
        day += timedelta(days=every_days)
    return out


def replay(
    ws: Workspace,
    url: str,
    *,
    every_days: int = 6,
    hours: tuple[int, ...] = (8, 17),
    rate: float = 400.0,
    on_hour: Callable[[int, int], None] | None = None,
    on_month: Callable[[datetime, int], None] | None = None,
) -> ReplayResult:
    """Replay the chosen July-December hours against ``url`` (a v1 predict URL).

    ``on_month(month, answered)`` is called after the last hour of each month (``month`` is
    its first day) with the number of requests answered so far.

    Example:
        >>> # replay(ws, "http://127.0.0.1:8080/v1/models/delay/predict").percentiles()
    """
    import duckdb

    from plinth.serving.loadgen import load_test

    chosen = replay_hours(every_days, hours)
    flights = ws.lake.scan("flights")
    con = duckdb.connect()
    con.register("flights", flights)
    query = (
        "SELECT year, month, day, flight, time_hour, "
        + ", ".join(REQUEST_FIELDS)
        + " FROM flights WHERE tailnum IS NOT NULL AND time_hour IN ("
        + ", ".join("?" for _ in chosen)
        + ") ORDER BY time_hour, origin, carrier, flight"
    )
    rows = con.sql(query, params=chosen).to_arrow_table().to_pylist()
    con.close()
    by_hour: dict[datetime, list[dict[str, Any]]] = {}
    for row in rows:
        by_hour.setdefault(row["time_hour"].astimezone(UTC), []).append(row)
    store = ws.features.online_store
    store.delete_view("weather")  # replay the store as it stood, hour by hour
    latencies: list[np.ndarray] = []
    statuses: dict[str, int] = {}
    previous = chosen[0] - timedelta(hours=3)
    try:
        for i, hour in enumerate(chosen):
            if on_month is not None and i and hour.month != chosen[i - 1].month:
                on_month(_month(chosen[i - 1]), _answered(statuses))
            ws.features.materialize("weather", start=previous, end=hour)
            previous = hour
            batch = by_hour.get(hour, [])
            if not batch:
                continue
            bodies = [
                (
                    {
                        "records": [{k: row[k] for k in REQUEST_FIELDS}],
                        "as_of": hour.isoformat(),
                    },
                    {"X-Request-ID": flight_id(row)},
                )
                for row in batch
            ]
            step = load_test(url, bodies, [rate], duration_s=len(bodies) / rate).steps[0]
            latencies.append(step.latencies_ms)
            for key, count in step.statuses.items():
                statuses[key] = statuses.get(key, 0) + count
            if on_hour is not None:
                on_hour(i + 1, len(chosen))
        if on_month is not None:
            on_month(_month(chosen[-1]), _answered(statuses))
    finally:
        ws.features.materialize("weather")  # back to the newest values
    done = np.concatenate(latencies) if latencies else np.array([])
    return ReplayResult(len(chosen), sum(statuses.values()), _answered(statuses), statuses, done)


def _answered(statuses: dict[str, int]) -> int:
    return sum(n for k, n in statuses.items() if k.startswith("2"))


def _month(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
