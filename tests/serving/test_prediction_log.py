"""The prediction log writer's conversion: rows converted per message as they arrive, joined
at the flush into the same table one conversion of everything gives."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from plinth.serving.prediction_log import LogEntry, _joined, to_arrow

T0 = datetime(2024, 1, 2, tzinfo=UTC)


def _entry(i: int, inputs: dict, kinds: dict, n: int = 1) -> LogEntry:
    return LogEntry(
        request_id=f"req-{i}",
        model="risk",
        version=1,
        route="primary",
        answered_at=T0,
        event_time=None,
        latency_ms=1.0 + i,
        inputs=inputs,
        kinds=kinds,
        predictions=np.arange(n, dtype=float) + i,
        n=n,
    )


def test_parts_join_to_the_table_of_all_entries():
    entries = [_entry(i, {"x": [float(i)] * 2, "k": [i, i]}, {"x": "float"}, n=2) for i in range(6)]
    entries.append(_entry(6, {"x": [1.0], "k": [7], "extra": ["a"]}, {"x": "float"}))
    parts = [to_arrow(entries[:3]), to_arrow(entries[3:])]
    joined = _joined(entries, parts)
    whole = to_arrow(entries)
    assert joined.num_rows == 13
    assert joined.select(whole.column_names).equals(whole)
    assert joined.column("extra").null_count == 12  # absent from the first requests


def test_parts_whose_types_disagree_are_converted_again_together():
    numbers = [_entry(0, {"code": [1.5]}, {"code": "float"})]
    texts = [_entry(1, {"code": ["JFK"]}, {"code": "string"})]
    entries = numbers + texts
    joined = _joined(entries, [to_arrow(numbers), to_arrow(texts)])
    assert joined.equals(to_arrow(entries))
    assert joined.column("code").to_pylist() == ["1.5", "JFK"]


def test_a_part_that_failed_to_convert_is_not_lost():
    entries = [_entry(i, {"x": [float(i)]}, {"x": "float"}) for i in range(4)]
    joined = _joined(entries, [to_arrow(entries[:2])])  # the second message's part is missing
    assert joined.num_rows == 4 and joined.equals(to_arrow(entries))
