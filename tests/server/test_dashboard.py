"""The web dashboard in process (httpx over ASGI): every page renders, login and logout, what a
viewer is not offered, escaping, and a 10 x 10k-step run comparison drawn fast and thin."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import plinth

COOKIE = "plinth_token"


def _call(app: Any, body: Callable[[Any], Any]) -> Any:
    import httpx

    async def main() -> Any:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await body(client)

    return asyncio.run(main())


def _secret(ws: plinth.Workspace, role: str) -> str:
    from plinth.governance import tokens

    return tokens.create_token(ws, f"{role}-ui", owner=f"{role}-person", role=role).secret


def _app(ws: plinth.Workspace) -> Any:
    from plinth.server.app import create_app

    return create_app(ws)


def _ids(pattern: str, text: str) -> list[str]:
    return list(dict.fromkeys(re.findall(pattern, text)))


PAGES = [
    "/ui",
    "/ui/tables",
    "/ui/tables/sensors",
    "/ui/features",
    "/ui/runs",
    "/ui/runs?filter=metrics.auc+%3E+0.6",
    "/ui/models",
    "/ui/models/risk",
    "/ui/pipelines",
    "/ui/deployments",
    "/ui/monitoring",
    "/ui/lineage?object=risk@champion",
    "/ui/lineage",
    "/ui/audit",
    "/ui/audit?verify=1",
    "/ui/cost",
    "/ui/cost?by=run",
]


def test_every_page_renders_for_an_admin(secured: plinth.Workspace) -> None:
    app, secret = _app(secured), _secret(secured, "admin")

    async def body(client: Any) -> dict[str, Any]:
        client.cookies.set(COOKIE, secret)
        seen = {path: await client.get(path) for path in PAGES}
        runs = seen["/ui/runs"].text
        ids = _ids(r"/ui/runs/(run_[A-Za-z0-9]+)", runs)
        assert len(ids) >= 2
        seen["run"] = await client.get(f"/ui/runs/{ids[0]}")
        seen["compare"] = await client.get(f"/ui/runs/compare?ids={ids[0]},{ids[1]}")
        seen["missing run"] = await client.get("/ui/runs/run_nothing_here")
        seen["missing table"] = await client.get("/ui/tables/nothing")
        return seen

    seen = _call(app, body)
    for path, response in seen.items():
        if path.startswith("missing"):
            assert response.status_code == 404, path
            continue
        assert response.status_code == 200, (path, response.text[:500])
        assert response.headers["content-type"].startswith("text/html")
        assert "<script" not in response.text, path
    # The navigation offers everything to an admin, audit included.
    assert "href='/ui/audit'" in seen["/ui"].text
    # Metric curves are SVG line charts; the deployment's traffic is charted.
    assert "metric-curve" in seen["run"].text and "<svg" in seen["run"].text
    assert seen["compare"].text.count("<path d=") >= 2
    assert "Throughput" in seen["/ui/deployments"].text
    assert "<svg" in seen["/ui/lineage?object=risk@champion"].text
    assert "sensors" in seen["/ui/tables"].text
    assert "Chain intact" in seen["/ui/audit?verify=1"].text


def test_anonymous_page_requests_go_to_the_login_page(secured: plinth.Workspace) -> None:
    app = _app(secured)

    async def body(client: Any) -> list[Any]:
        return [
            await client.get("/ui/runs?offset=0"),
            await client.get("/ui/models/risk", headers={"Authorization": "Bearer plt_nope"}),
            await client.get("/ui/login"),
            await client.get("/"),
        ]

    runs, bad, form, root = _call(app, body)
    assert runs.status_code == 303
    assert runs.headers["location"].startswith("/ui/login?next=%2Fui%2Fruns")
    assert bad.status_code == 303
    assert form.status_code == 200 and "name='token'" in form.text
    assert root.status_code in (302, 303, 307) and root.headers["location"] == "/ui"


def test_login_sets_a_strict_httponly_cookie_and_logout_clears_it(
    secured: plinth.Workspace,
) -> None:
    app, secret = _app(secured), _secret(secured, "viewer")

    async def body(client: Any) -> list[Any]:
        wrong = await client.post("/ui/login", data={"token": "plt_wrong"})
        empty = await client.post("/ui/login", data={"token": ""})
        good = await client.post(
            "/ui/login", data={"token": secret, "next": "/ui/runs"}, follow_redirects=False
        )
        after = await client.get("/ui/runs")
        evil = await client.post("/ui/login", data={"token": secret, "next": "//evil.example/"})
        out = await client.get("/ui/logout")
        client.cookies.clear()
        gone = await client.get("/ui/runs")
        return [wrong, empty, good, after, evil, out, gone]

    wrong, empty, good, after, evil, out, gone = _call(app, body)
    assert wrong.status_code == 401 and "name='token'" in wrong.text
    assert empty.status_code == 400
    assert good.status_code == 303 and good.headers["location"] == "/ui/runs"
    cookie = good.headers["set-cookie"].lower()
    assert f"{COOKIE}=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert after.status_code == 200 and "viewer-person" in after.text
    assert evil.headers["location"] == "/ui"
    assert out.status_code == 303 and f'{COOKIE}=""' in out.headers["set-cookie"]
    assert gone.status_code == 303


def test_a_viewer_is_offered_no_control_that_changes_state(secured: plinth.Workspace) -> None:
    app = _app(secured)
    viewer, deployer = _secret(secured, "viewer"), _secret(secured, "deployer")

    async def body(client: Any) -> dict[str, Any]:
        client.cookies.set(COOKIE, viewer)
        out = {path: (await client.get(path)).text for path in PAGES}
        out["post"] = await client.post(
            "/ui/models/risk/alias", data={"alias": "champion", "version": "2"}
        )
        client.cookies.set(COOKIE, deployer)
        out["deployer page"] = (await client.get("/ui/models/risk")).text
        out["cross-site"] = await client.post(
            "/ui/models/risk/alias",
            data={"alias": "champion", "version": "2"},
            headers={"Origin": "http://evil.example"},
        )
        out["move"] = await client.post(
            "/ui/models/risk/alias", data={"alias": "champion", "version": "2", "reason": "ui"}
        )
        return out

    seen = _call(app, body)
    for path in PAGES:
        text = seen[path]
        if path.startswith("/ui/audit"):
            continue  # not the viewer's to read at all (403)
        forms = re.findall(r"<form[^>]*>", text)
        assert all("method='post'" not in f.lower() for f in forms), (path, forms)
        assert "/alias" not in text and "Move alias" not in text, path
    assert "href='/ui/audit'" not in seen["/ui"]
    assert seen["post"].status_code == 403
    assert "Move alias" in seen["deployer page"]
    assert seen["cross-site"].status_code == 403
    assert seen["move"].status_code == 303
    assert secured.models.resolve("risk@champion") == ("risk", 2)
    history = secured.models.alias_history("risk", "champion")
    assert history[-1].by == "deployer-person" or history[0].by == "deployer-person"


def test_auth_off_goes_straight_in(ws: plinth.Workspace) -> None:
    app = _app(ws)

    async def body(client: Any) -> list[Any]:
        return [await client.get("/ui/login"), await client.get("/ui/models/risk")]

    form, page = _call(app, body)
    assert "Authentication is off" in form.text and "name='token'" not in form.text
    assert page.status_code == 200 and "Move alias" in page.text  # the local admin


def test_names_from_the_catalog_are_escaped(ws: plinth.Workspace) -> None:
    import pyarrow as pa

    evil = "<script>alert(1)</script>"
    from sqlalchemy import update

    from plinth.catalog import models as m

    ws.lake.ingest(pa.table({"k": [1]}), table="x_evil")
    with ws.run("exp", params={"p": evil}, capture=False) as run:
        run.log_metric("loss", 1.0, step=0)
        run.log_metric("loss", 2.0, step=1)
    with ws.catalog.session() as session:  # names the API would refuse, written behind it
        session.execute(update(m.LakeTable).values(description=evil))
        session.execute(update(m.Run).where(m.Run.id == run.id).values(experiment=evil))
    app = _app(ws)

    async def body(client: Any) -> list[str]:
        pages = ["/ui/tables", "/ui/tables/x_evil", f"/ui/runs/{run.id}", "/ui/runs"]
        pages.append(f"/ui/lineage?object={evil}")
        return [(await client.get(p)).text for p in pages]

    for text in _call(app, body):
        assert "<script>" not in text
    assert "&lt;script&gt;" in _call(app, body)[2]


def test_comparing_ten_runs_of_ten_thousand_steps_is_fast_and_thin(ws: plinth.Workspace) -> None:
    from plinth.server.dashboard.runs import MAX_POINTS

    steps = 10_000
    ids = []
    for i in range(10):
        with ws.run("long", params={"seed": i}, capture=False) as run:
            values = np.cumsum(np.random.default_rng(i).normal(size=steps))
            for step, value in enumerate(values):
                run.log_metric("loss", float(value), step=step)
        ids.append(run.id)
    app = _app(ws)

    async def body(client: Any) -> tuple[Any, float]:
        await client.get("/ui/runs")  # warm up
        started = time.perf_counter()
        response = await client.get("/ui/runs/compare", params={"ids": ",".join(ids)})
        return response, time.perf_counter() - started

    response, elapsed = _call(app, body)
    assert response.status_code == 200
    assert elapsed < 1.0, f"the comparison took {elapsed:.2f} s"
    chart = response.text.split("metric-curve", 1)[1]
    paths = re.findall(r'<path d="([^"]+)" fill="none" stroke="#', chart)
    assert len(paths) == 10
    for data in paths:
        points = len(re.findall(r"-?[\d.]+,-?[\d.]+", data))
        assert 2 <= points <= MAX_POINTS
    assert "of 100,000 points drawn" in response.text


@pytest.mark.parametrize("path", ["/ui/runs?offset=-5", "/ui/runs?offset=abc"])
def test_bad_offsets_are_clamped(ws: plinth.Workspace, path: str) -> None:
    response = _call(_app(ws), lambda client: client.get(path))
    assert response.status_code == 200


def test_dashboard_routes_declare_their_permission(ws: plinth.Workspace) -> None:
    from plinth.server.app import route_table

    public = {"/", "/ui/login", "/ui/logout"}
    routes = [r for r in route_table(_app(ws)) if r.path == "/" or r.path.startswith("/ui")]
    assert len(routes) >= 20
    for route in routes:
        if route.path in public:
            continue
        assert route.permission is not None, route.path
    alias = next(r for r in routes if r.path == "/ui/models/{name}/alias")
    assert alias.permission == "models:promote"
