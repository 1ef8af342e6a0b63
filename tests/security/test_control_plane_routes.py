"""Every route of the control plane has an authorization decision, checked for every kind
of caller with authentication on: routes are enumerated from the app, so a new route without
a permission (or a dashboard page that serves data anonymously) fails here."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import plinth
from plinth._core.clock import utcnow
from plinth.governance import roles, tokens
from plinth.server.app import API_PREFIX, create_app, route_table
from tests.server.conftest import call, served_home, server_home

__all__ = ["served_home", "server_home"]

#: Routes anyone may call: the liveness probe and the API's own description.
OPEN = {
    ("GET", f"{API_PREFIX}/health"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
}
#: Dashboard pages shown before logging in: the login form, the root redirect, logging out.
PUBLIC_PAGES = re.compile(r"^(/|/ui/login|/ui/logout|/ui/static/.*|/static/.*)$")
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/runs"): {"experiment": "probe"},
    ("POST", "/runs/{run_id}/metrics"): {"points": [{"key": "loss", "value": 1.0}]},
    ("POST", "/runs/{run_id}/params"): {"params": {"probe": 1}},
    ("POST", "/runs/{run_id}/tags"): {"tags": {"probe": "1"}},
    ("POST", "/runs/{run_id}/end"): {"status": "finished"},
    ("POST", "/runs/{run_id}/inputs"): {"inputs": ["sensors"]},
    ("POST", "/runs/{run_id}/artifacts/{name:path}"): {"probe": 1},
    ("PUT", "/models/{name}/aliases/{alias}"): {"version": 1},
    ("PUT", "/tables/{name}/contract"): {"contract": {"table": "sensors"}},
    ("POST", "/features/apply"): {
        "definitions": [{"kind": "entity", "name": "probe", "join_keys": ["probe"]}]
    },
}


@pytest.fixture
def secured(server_home: Path, tmp_path: Path) -> Iterator[plinth.Workspace]:
    home = tmp_path / "ws"
    shutil.copytree(server_home, home)
    ws = plinth.Workspace(settings=plinth.Settings(home=home, user="tester", auth=True))
    yield ws
    ws.close()


def _concrete(path: str, run_id: str) -> str:
    rest = path.removeprefix(API_PREFIX)
    values = {
        "{run_id}": run_id if rest.startswith("/runs") else "prun_x",
        "{key:path}": "loss",
        "{alias}": "champion",
        "{version}": "1",
        "{alert_id}": "1",
        "{model}": "risk@champion",
        "{obj:path}": "risk@champion",
        "{name}": "sensors" if rest.startswith("/tables") else "risk",
    }
    for placeholder, value in values.items():
        path = path.replace(placeholder, value)
    return re.sub(r"\{[^}]+\}", "x", path)


def _lowest_role(permission: str) -> str:
    if permission == "any":
        return "viewer"
    return next(r for r in roles.ROLES if permission in roles.PERMISSIONS[r])


def test_every_route_is_refused_or_allowed_as_its_permission_says(secured):
    from plinth.catalog.models import ApiToken

    app = create_app(secured)
    run_id = secured.runs.list(limit=1)[0].id
    header = {r: f"Bearer {tokens.create_token(secured, r, owner=r, role=r).secret}"
              for r in roles.ROLES}  # fmt: skip
    revoked = tokens.create_token(secured, "old", owner="vic", role="admin")
    expired = tokens.create_token(secured, "stale", owner="vic", role="admin")
    tokens.revoke_token(secured, revoked.info.id)
    with secured.catalog.session() as session:
        session.get(ApiToken, expired.info.id).expires_at = utcnow() - timedelta(seconds=1)
    refused = {
        "anonymous": None,
        "garbage": "Bearer plt_not-a-real-token",
        "basic auth": "Basic dGVzdGVyOnRlc3Rlcg==",
        "revoked token": f"Bearer {revoked.secret}",
        "expired token": f"Bearer {expired.secret}",
    }
    checked: list[tuple[str, str]] = []
    dashboard: list[tuple[str, str]] = []
    problems: list[str] = []

    async def probe(client: Any) -> None:
        for route in route_table(app):
            for method in sorted(route.methods - {"HEAD"}):
                path = _concrete(route.path, run_id)
                key = (method, route.path.removeprefix(API_PREFIX))
                body = BODIES.get(key)

                async def send(
                    auth: str | None,
                    *,
                    cookie: str | None = None,
                    method: str = method,
                    path: str = path,
                    body: Any = body,
                ) -> Any:
                    headers = {"Authorization": auth} if auth else {}
                    client.cookies.clear()
                    if cookie:
                        client.cookies.set("plinth_token", cookie)
                    return await client.request(
                        method, path, json=body, headers=headers, follow_redirects=False
                    )

                if (method, route.path) in OPEN:
                    answer = await send(None)
                    if answer.status_code != 200:
                        problems.append(
                            f"{method} {route.path}: open route got {answer.status_code}"
                        )
                    checked.append((method, route.path))
                    continue
                if not route.path.startswith(API_PREFIX):  # a dashboard page
                    if PUBLIC_PAGES.match(route.path):
                        dashboard.append((method, route.path))
                        continue
                    answer = await send(None)
                    location = answer.headers.get("location", "")
                    ok = answer.status_code in (401, 403) or (
                        300 <= answer.status_code < 400 and "login" in location
                    )
                    if not ok:
                        problems.append(
                            f"{method} {route.path}: anonymous got {answer.status_code}"
                        )
                    dashboard.append((method, route.path))
                    continue
                if route.permission is None:
                    problems.append(f"{method} {route.path}: no permission declared")
                    continue
                for who, auth in refused.items():
                    answer = await send(auth)
                    if answer.status_code != 401:
                        problems.append(f"{method} {route.path}: {who} got {answer.status_code}")
                    elif "error" not in answer.json():
                        problems.append(f"{method} {route.path}: {who} 401 without JSON error")
                cookie_answer = await send(None, cookie="plt_not-a-real-token")
                if cookie_answer.status_code != 401:
                    problems.append(f"{method} {route.path}: bad cookie got "
                                    f"{cookie_answer.status_code}")  # fmt: skip
                needed = _lowest_role(route.permission)
                if needed != "viewer":
                    answer = await send(header["viewer"])
                    if answer.status_code != 403:
                        problems.append(f"{method} {route.path}: viewer got {answer.status_code}")
                answer = await send(header[needed])
                if answer.status_code in (401, 403) or answer.status_code >= 500:
                    problems.append(
                        f"{method} {route.path}: {needed} got {answer.status_code} {answer.text}"
                    )
                viewer_cookie = header["viewer"].removeprefix("Bearer ")
                if needed == "viewer":
                    answer = await send(None, cookie=viewer_cookie)
                    if answer.status_code in (401, 403):
                        problems.append(f"{method} {route.path}: cookie got {answer.status_code}")
                checked.append((method, route.path))

    call(app, probe)
    assert not problems, "\n".join(problems)
    every = {(m, r.path) for r in route_table(app) for m in r.methods - {"HEAD"}}
    assert set(checked) | set(dashboard) == every
    api = [c for c in checked if c[1].startswith(API_PREFIX)]
    assert len(api) >= 35, api  # every route of the published route table
    print(f"\n{len(checked)} API/open routes and {len(dashboard)} dashboard routes checked")


def test_auth_off_with_a_shared_catalog_is_refused(tmp_path):
    from plinth.errors import ConfigError
    from plinth.governance.access import require_auth_allowed

    settings = plinth.Settings(home=tmp_path, user="tester")
    with pytest.raises(ConfigError, match="Authentication is off"):
        require_auth_allowed(settings, "postgresql://db.example/plinth")
