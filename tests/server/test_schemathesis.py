"""Property-based requests from the OpenAPI spec (schemathesis) against the in-process app,
authenticated as an admin: no operation may answer 5xx, whatever the parameters."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import plinth

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

#: Examples per operation: the suite stays within about a minute.
EXAMPLES = 25


@pytest.fixture(scope="module")
def fuzzed(server_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The app over a private copy of the API workspace, auth on, and an admin header."""
    from plinth.governance import tokens
    from plinth.server.app import create_app

    home = tmp_path_factory.mktemp("fuzz") / "ws"
    shutil.copytree(server_home, home)
    ws = plinth.Workspace(settings=plinth.Settings(home=home, user="tester", auth=True))
    secret = tokens.create_token(ws, "fuzz", owner="fuzzer", role="admin").secret
    yield create_app(ws), {"Authorization": f"Bearer {secret}"}
    ws.close()


def test_no_operation_answers_5xx(fuzzed: Any) -> None:
    from hypothesis import given

    app, headers = fuzzed
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    statuses: dict[int, int] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            response = case.call(headers=headers)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code} "
                                f"{response.text[:300]}")  # fmt: skip

        check()
    assert operations >= 35 and sum(statuses.values()) >= operations * 5, statuses
    print(
        f"\n{operations} operations, {sum(statuses.values())} requests: {sorted(statuses.items())}"
    )
    assert not failures, "\n".join(failures[:20])
