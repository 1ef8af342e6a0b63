"""The dashboard in headless Chromium over a workspace made by the quickstart: the served
model's lineage graph, its drift charts and the runs' metric curves are drawn, and a viewer is
offered no control that changes state. Screenshots go to ``test-artifacts/screenshots/``.

Needs Playwright (the dev extra) and the Debian ``chromium`` package (``make test`` installs
it); Playwright's own browser download is not used. Locally the test skips with a reason when
either is missing; under ``CI=true`` it fails.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"


def _unavailable(reason: str) -> None:
    message = f"The browser test cannot run: {reason}"
    if os.environ.get("CI", "").strip().lower() in {"true", "1"}:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _chromium() -> str:
    if importlib.util.find_spec("playwright") is None:
        _unavailable("playwright is not installed (pip install -e '.[dev]').")
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        _unavailable("the 'chromium' executable is missing (apt-get install chromium).")
    return str(found)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def quickstart_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace made by ``plinth quickstart`` (about a minute)."""
    _chromium()
    from plinth.cli.main import main

    home = tmp_path_factory.mktemp("browser") / "ws"
    assert main(["quickstart", "--home", str(home)]) == 0
    return home


@pytest.fixture(scope="module")
def server(quickstart_home: Path) -> Iterator[dict[str, Any]]:
    """The control plane over the quickstart workspace with authentication on, in a thread,
    with an admin and a viewer token."""
    import uvicorn

    import plinth
    from plinth.governance import tokens
    from plinth.server.app import create_app

    settings = plinth.Settings(home=quickstart_home, user="quickstart", auth=True)
    ws = plinth.Workspace(settings=settings)
    admin = tokens.create_token(ws, "browser-admin", owner="ada", role="admin").secret
    viewer = tokens.create_token(ws, "browser-viewer", owner="vic", role="viewer").secret
    port = _free_port()
    config = uvicorn.Config(create_app(ws), host="127.0.0.1", port=port, log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield {"base": f"http://127.0.0.1:{port}", "admin": admin, "viewer": viewer}
    uv.should_exit = True
    thread.join(10)
    ws.close()


def _login(page: Any, base: str, secret: str) -> None:
    page.goto(f"{base}/ui/runs")
    assert "/ui/login" in page.url  # not logged in yet
    page.fill("input[name=token]", secret)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/ui/runs")


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.mark.slow
def test_the_quickstart_workspace_in_chromium(server: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    base = server["base"]
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            _login(page, base, server["admin"])
            _shot(page, "runs")
            for path, name in (
                ("/ui", "overview"),
                ("/ui/tables", "tables"),
                ("/ui/tables/flights", "table-flights"),
                ("/ui/features", "features"),
                ("/ui/models", "models"),
                ("/ui/pipelines", "pipelines"),
                ("/ui/deployments", "deployments"),
                ("/ui/monitoring", "monitoring-index"),
                ("/ui/audit", "audit"),
                ("/ui/cost", "cost"),
            ):
                response = page.goto(base + path)
                assert response is not None and response.status == 200, path
                _shot(page, name)
            # Metric curves: open a run from the list, then compare the two runs.
            page.goto(f"{base}/ui/runs")
            boxes = page.locator("input[name=ids]")
            assert boxes.count() >= 2
            run_link = page.locator("a[href^='/ui/runs/run_']").first
            run_link.click()
            page.wait_for_selector(".metric-curve svg path")
            _shot(page, "run")
            page.goto(f"{base}/ui/runs")
            boxes.nth(0).check()
            boxes.nth(1).check()
            page.click("text=Compare selected")
            page.wait_for_selector(".metric-curve svg path")
            assert page.locator(".metric-curve svg").count() >= 1
            _shot(page, "runs-compare")
            # The served model: its model page, lineage graph and drift charts.
            page.goto(f"{base}/ui/models/delay")
            assert page.locator("form.alias-move").count() == 1  # an admin may move aliases
            _shot(page, "model-delay")
            page.goto(f"{base}/ui/lineage?object=delay@champion")
            graph = page.locator(".lineage svg")
            assert graph.count() == 1 and graph.locator("rect").count() >= 5
            assert "flights.csv" in page.content() or "file" in page.content()
            _shot(page, "lineage-delay")
            page.goto(f"{base}/ui/monitoring/delay")
            assert page.locator("text=Drift").count() >= 1
            assert page.locator(".report svg").count() >= 3
            _shot(page, "monitoring-delay")
            page.goto(f"{base}/ui/pipelines")
            page.locator("a[href^='/ui/pipelines/pr_']").first.click()
            page.wait_for_selector("svg.dag rect")
            _shot(page, "pipeline-dag")

            # A viewer: logged in with its own token, offered nothing that changes state.
            viewer = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            _login(viewer, base, server["viewer"])
            viewer.goto(f"{base}/ui/models/delay")
            assert viewer.locator("form.alias-move").count() == 0
            assert viewer.locator("form[method=post]").count() == 0
            assert viewer.locator("text=Move alias").count() == 0
            assert viewer.locator("a[href='/ui/audit']").count() == 0
            _shot(viewer, "viewer-model-delay")
        finally:
            browser.close()
