"""Administration and cost reports through the server: ``plinth token``, ``plinth role`` and
``plinth cost waste|prices|budget`` with PLINTH_URL set print what they print over the local
catalog, act as the token's owner, and refuse a viewer without a traceback."""

from __future__ import annotations

import re

import pytest

from plinth.governance.tokens import get_token
from tests.client.conftest import USER, World
from tests.client.test_cli_remote import both, cli, remote_env

__all__ = ["remote_env"]


@pytest.fixture(autouse=True)
def same_user(monkeypatch: pytest.MonkeyPatch, world: World) -> None:
    """The local CLI acts as the world's user (who is the server's admin, by its token), and
    the admin token's last use is fresh, so listing it twice shows the same time."""
    from plinth.client import RemoteClient

    monkeypatch.setenv("PLINTH_USER", USER)
    assert world.server is not None
    with RemoteClient(world.server.url, world.admin_token) as admin:
        admin.whoami()


def plain(text: str) -> str:
    """Output with secrets, token ids and times replaced by placeholders."""
    text = re.sub(r"plt_[A-Za-z0-9_-]{43}", "<secret>", text)
    text = re.sub(r"tok_[A-Za-z0-9]+", "<id>", text)
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "<time>", text)


@pytest.mark.parametrize(
    "args",
    [
        ("token", "list"),
        ("token", "list", "--all", "--json"),
        ("role", "list"),
        ("role", "list", "--json"),
        ("role", "list", "--project", "default"),
        ("role", "list", "--project", "elsewhere"),
        ("cost", "prices"),
        ("cost", "prices", "--json"),
        ("cost", "budget"),
        ("cost", "budget", "--json"),
    ],
    ids=lambda a: " ".join(a),
)
def test_admin_and_cost_commands_print_what_local_ones_print(capsys, remote_env, world, args):
    local, remote = both(capsys, remote_env, world, *args)
    assert remote == local
    assert remote.strip()


@pytest.mark.parametrize("args", [("cost", "waste"), ("cost", "waste", "--since", "30d", "--json")])
def test_cost_waste_prints_the_same_report(capsys, remote_env, world, monkeypatch, args):
    from plinth._core.clock import utcnow
    from plinth.cost import accounting, standing

    now = utcnow()
    monkeypatch.setattr(accounting, "utcnow", lambda: now)
    monkeypatch.setattr(standing, "utcnow", lambda: now)
    local, remote = both(capsys, remote_env, world, *args)
    assert remote == local and remote.strip()


def test_token_create_and_revoke_through_the_server(capsys, remote_env, world):
    remote_env(True)
    code, out, err = cli(capsys, "token", "create", "laptop", "--role", "viewer", "--expires", "2w")
    assert code == 0, err
    secret = out.splitlines()[0]
    token_id = re.search(r"Token (tok_\w+)", out).group(1)
    info = get_token(world.ws, token_id)
    assert (info.owner, info.created_by, info.name) == (USER, USER, "laptop")
    remote_env(False)
    code, local, err = cli(capsys, "token", "create", "laptop", "--role", "viewer", "--expires",
                           "2w", "--home", str(world.settings.home))  # fmt: skip
    assert code == 0, err
    assert plain(out) == plain(local) and secret.startswith("plt_")
    assert "role viewer in project 'default'" in " ".join(out.split())
    local_id = re.search(r"Token (tok_\w+)", local).group(1)
    remote_env(True)
    code, out, err = cli(capsys, "token", "create", "ci", "--json")
    assert code == 0, err and '"token": "plt_' in out and '"project": "default"' in out
    code, out, err = cli(capsys, "token", "revoke", token_id)
    assert code == 0, err
    assert out.strip() == f"Revoked token {token_id} 'laptop' of {USER}."
    code, out, err = cli(capsys, "token", "revoke", token_id)
    assert code == 0 and out.startswith(f"Token {token_id} was already revoked at")
    remote_env(False)
    code, local, _ = cli(capsys, "token", "revoke", local_id, "--home", str(world.settings.home))
    assert local.strip() == f"Revoked token {local_id} 'laptop' of {USER}."


def test_role_grant_and_revoke_print_the_same(capsys, remote_env, world):
    from plinth.catalog.audit import events

    outputs = {}
    for mode in (False, True):
        remote_env(mode)
        home = () if mode else ("--home", str(world.settings.home))
        for verb in (("grant", "zed", "developer"), ("revoke", "zed")):
            code, out, err = cli(capsys, "role", *verb, *home)
            assert code == 0, err
            outputs[mode, verb[0]] = out
    assert outputs[True, "grant"] == outputs[False, "grant"]
    assert outputs[True, "revoke"] == outputs[False, "revoke"]
    assert outputs[True, "revoke"].strip() == "Revoked zed: developer in project 'default'."
    found = events(world.ws, resource="role:default/zed")
    assert [(e.action, e.actor) for e in found] == [("role.revoke", USER), ("role.grant", USER)] * 2


def test_admin_errors_are_the_local_errors(capsys, remote_env, world):
    remote_env(True)
    code, out, err = cli(capsys, "token", "revoke", "tok_nope")
    assert code == 1 and not out and "No token has the id 'tok_nope'" in err
    code, out, err = cli(capsys, "role", "grant", "ana", "boss")
    assert code == 1 and not out and "'boss' is not a role" in err
    code, out, err = cli(capsys, "token", "create", "x", "--expires", "soon")
    assert code == 1 and not out and "'soon' is not a token lifetime" in err
    code, out, err = cli(capsys, "role", "revoke", "nobody")
    assert code == 1 and "'nobody' holds no role in project 'default'" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "needed"),
    [
        (("token", "list"), "tokens:read"),
        (("token", "create", "mine", "--role", "admin"), "tokens:admin"),
        (("token", "revoke", "tok_x"), "tokens:read"),  # it reads the token first
        (("role", "grant", "me", "admin"), "tokens:admin"),
        (("role", "revoke", "tester"), "tokens:admin"),
        (("role", "list"), "tokens:read"),
        (("cost", "budget"), "monitoring:write"),
    ],
    ids=lambda a: " ".join(a) if isinstance(a, tuple) else a,
)
def test_a_viewer_token_cannot_administer(capsys, remote_env, world, monkeypatch, args, needed):
    remote_env(True)
    monkeypatch.setenv("PLINTH_TOKEN", world.viewer_token)
    code, out, err = cli(capsys, *args)
    assert code == 1 and not out and f"may not {needed}" in err and "Traceback" not in err


def test_budget_alerts_fire_through_the_server_as_the_caller(world):
    """A server whose project has a budget far below its spend: evaluating through it fires
    both budget alerts on the server, audited as the token's owner."""
    from plinth._core.settings import Settings
    from plinth.client import RemoteClient
    from plinth.governance.tokens import create_token
    from plinth.server.app import create_app
    from plinth.workspace import Workspace
    from tests.client.conftest import Server

    settings = Settings(home=world.settings.home, user=USER, auth=True, budgets={"default": 1e-9})
    served = Workspace(settings=settings)
    server = Server(create_app(served))
    try:
        token = create_token(world.ws, "budget-admin", owner="ana", role="admin").secret
        with RemoteClient(server.url, token) as admin:
            statuses = admin.evaluate_budgets()
            again = admin.evaluate_budgets()
    finally:
        server.stop()
        served.close()
    [status] = [s for s in statuses if s.project == "default"]
    assert status.share is not None and status.share > 1
    assert set(status.transitions.values()) == {"fired"}
    [repeat] = [s for s in again if s.project == "default"]
    assert set(repeat.transitions.values()) == {"firing"}
    with RemoteClient(world.server.url, world.admin_token) as reader:
        fired = [e for e in reader.audit(action="alert.fire") if "budget" in str(e.details)]
    assert len(fired) == 2 and {e.actor for e in fired} == {"ana"}


def test_the_price_tables_date_is_the_servers():
    """A server of another version may have checked its default prices at another date; the
    report says the server's date, not this machine's."""
    from plinth.client._decode import price_table_of
    from plinth.cost.prices import PRICES_AS_OF, price_table

    sent = {"as_of": "2030-01", "prices": price_table().to_dict()}
    table = price_table_of(sent)
    assert table.as_of == "2030-01" and table.cpu_core_hour == price_table().cpu_core_hour
    assert price_table().as_of == PRICES_AS_OF
