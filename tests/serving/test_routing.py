"""Traffic management: canary weights, shadow traffic, hot reload on alias moves and
deployment changes, rollback."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from plinth.errors import ConfigError
from plinth.serving.deployments import DeploymentNotFoundError, DeploymentSpec

ONE = {"records": [{"k": 1, "x": 0.5}]}


def test_a_10_percent_canary_gets_10_percent_of_10000_requests(ws, harness):
    ws.deployments.apply(DeploymentSpec.of("risk@champion", canary="risk:2", canary_weight=10))

    async def body(client):
        versions: Counter[int] = Counter()
        routes: Counter[str] = Counter()
        for _ in range(20):
            answers = await asyncio.gather(
                *(client.post("/v1/models/risk/predict", json=ONE) for _ in range(500))
            )
            for answer in answers:
                assert answer.status_code == 200
                versions[answer.json()["version"]] += 1
                routes[answer.json()["route"]] += 1
        return versions, routes

    versions, routes = harness(["risk"]).run(body)
    assert sum(versions.values()) == 10_000
    assert 800 <= versions[2] <= 1200, versions  # 10% +- 2%
    assert routes["canary"] == versions[2] and routes["primary"] == versions[1]


def test_shadow_gets_a_copy_whose_answers_are_logged_never_returned(ws, harness):
    ws.deployments.apply(DeploymentSpec.of("risk@champion", shadow="risk:2"))

    async def body(client):
        answers = [await client.post("/v1/models/risk/predict", json=ONE) for _ in range(20)]
        await asyncio.sleep(0.2)  # the shadow answers after the response
        return answers

    answers = harness(["risk"], log_predictions=True).run(body)
    assert {a.json()["version"] for a in answers} == {1}
    logged = ws.lake.read("predictions__risk").to_pandas()
    primary = logged[logged["route"] == "primary"]
    shadow = logged[logged["route"] == "shadow"]
    assert len(primary) == 20 and len(shadow) == 20
    assert set(shadow["model_version"]) == {2}
    assert set(shadow["request_id"]) == set(primary["request_id"])
    assert not shadow["prediction"].equals(primary["prediction"])  # v2 answers differently


def test_moving_the_champion_alias_under_load_fails_no_request(ws, harness):
    async def body(client):
        state = client._transport.app.state.serving  # type: ignore[attr-defined]
        statuses: Counter[int] = Counter()
        versions: list[int] = []
        stop = asyncio.Event()

        async def load() -> None:
            while not stop.is_set():
                answers = await asyncio.gather(
                    *(client.post("/v1/models/risk/predict", json=ONE) for _ in range(10))
                )
                for answer in answers:
                    statuses[answer.status_code] += 1
                    if answer.status_code == 200:
                        versions.append(answer.json()["version"])

        clients = [asyncio.create_task(load()) for _ in range(3)]
        await asyncio.sleep(0.3)
        await asyncio.to_thread(ws.models.set_alias, "risk", "champion", 2)
        for _ in range(200):  # the reload loop polls every 50 ms here
            if state.tables["risk"].entries[0].served.version == 2:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*clients)
        return statuses, versions

    statuses, versions = harness(reload_interval_s=0.05).run(body)
    assert set(statuses) == {200}, statuses
    assert versions[0] == 1 and versions[-1] == 2
    switched = versions.index(2)
    assert set(versions[switched:]) == {2}  # once rolled, never back


def test_a_new_deployment_revision_and_a_rollback_roll_the_server(ws, harness):
    async def body(client):
        state = client._transport.app.state.serving  # type: ignore[attr-defined]
        seen = []
        for action in (
            lambda: ws.deployments.apply(DeploymentSpec.of("risk:2")),
            lambda: ws.deployments.rollback("risk", to=1),
        ):
            await asyncio.to_thread(action)
            await state.reload()
            seen.append((await client.post("/v1/models/risk/predict", json=ONE)).json()["version"])
        return seen

    ws.deployments.apply(DeploymentSpec.of("risk@champion"))
    assert harness(["risk"], reload_interval_s=0).run(body) == [2, 1]
    history = ws.deployments.history("risk")
    assert [r.action for r in history] == ["apply", "apply", "rollback"]
    assert history[-1].spec == history[0].spec


def test_deployment_checks(ws):
    with pytest.raises(ConfigError, match="one model"):
        ws.deployments.apply(DeploymentSpec.of("risk@champion", canary="other:1"))
    with pytest.raises(ConfigError, match="between 0 and 100"):
        DeploymentSpec.of("risk@champion", canary="risk:2", canary_weight=100)
    with pytest.raises(DeploymentNotFoundError):
        ws.deployments.get("nothing")
    ws.deployments.apply(DeploymentSpec.of("risk@champion"))
    with pytest.raises(DeploymentNotFoundError, match="no revision 0"):
        ws.deployments.rollback("risk")
    from plinth.errors import NotFoundError

    with pytest.raises(NotFoundError):
        ws.deployments.apply(DeploymentSpec.of("risk:7"))
