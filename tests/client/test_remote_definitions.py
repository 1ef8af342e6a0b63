"""Definitions through the server: data contracts (``plinth contract apply|list|show``) and
feature definitions (``plinth features apply``), on both client backends and through the CLI.

The writes here create tables, contracts and definitions, so they run over this module's own
world (the ``world`` fixture is built once per module) and leave the conformance suite's alone.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pyarrow as pa
import pytest

import plinth
from plinth.errors import ConfigError, ContractError
from tests.client.conftest import USER, World
from tests.client.test_cli_remote import both, cli, remote_env

__all__ = ["remote_env"]


def squeezed(text: str) -> str:
    """``text`` without white space: the console wraps long lines, even inside a path."""
    return "".join(text.split())


def _audited(client, resource: str, action: str) -> list[tuple[str, str]]:
    return [(e.resource, e.actor) for e in client.audit(resource, action=action)]


# -- the client, both backends -------------------------------------------------------------


def test_apply_features_records_versions_as_the_caller(client, backend, world):
    code = plinth.Entity(f"code_{backend}", join_keys=["code"])
    view = plinth.FeatureView(
        f"airport_{backend}", source="airports", entities=[code], timestamp=None,
        features={"code_len": "length(code)"},
    )  # fmt: skip
    changes = client.apply_features([view])
    assert [(c.kind, c.name, c.version, c.status) for c in changes] == [
        ("entity", code.name, 1, "created"), ("view", view.name, 1, "created"),
    ]  # fmt: skip
    assert [c.status for c in client.apply_features([view])] == ["unchanged", "unchanged"]
    wider = plinth.FeatureView(
        view.name, source="airports", entities=[code], timestamp=None,
        features={"code_len": "length(code)", "lower": "lower(code)"},
    )  # fmt: skip
    changes = client.apply_features([wider])
    assert [(c.name, c.version, c.status) for c in changes] == [
        (code.name, 1, "unchanged"), (view.name, 2, "changed"),
    ]  # fmt: skip
    assert client.feature_definitions() == world.ws.features.definitions()
    assert client.feature_view(view.name).spec == world.ws.features.view_info(view.name).spec
    assert _audited(client, f"feature_view:{view.name}", "features.apply") == [
        (f"feature_view:{view.name}@2", USER), (f"feature_view:{view.name}@1", USER),
    ]  # fmt: skip


def test_a_view_with_a_ttl_comes_back_unchanged(client, backend, world):
    table = f"events_{backend}"
    start = datetime(2024, 1, 1)
    world.ws.lake.ingest(
        pa.table({"id": [1, 2], "ts": [start, start + timedelta(hours=1)], "v": [1.0, 2.0]}),
        table=table,
    )
    view = plinth.FeatureView(
        f"events_{backend}", source=table, entities=[plinth.Entity(f"ev_{backend}", ["id"])],
        timestamp="ts", ttl="3h", features={"v": "v", "v2": "v * 2"}, description="two",
    )  # fmt: skip
    service = plinth.FeatureService(f"svc_{backend}", [view, f"{view.name}:v"])
    first = client.apply_features([view, service])
    assert [c.status for c in first] == ["created", "created", "created"]
    again = client.apply_features([service, view])  # any order: entities, views, services
    assert [(c.kind, c.status) for c in again] == [
        ("entity", "unchanged"), ("view", "unchanged"), ("service", "unchanged"),
    ]  # fmt: skip
    refused = r"'nope' = 'no_such_column \+ 1' does not evaluate on 'events_"
    with pytest.raises(ConfigError, match=refused):
        client.apply_features([
            plinth.FeatureView(
                f"bad_{backend}", source=table, entities=[plinth.Entity(f"ev_{backend}", ["id"])],
                timestamp="ts", features={"nope": "no_such_column + 1"},
            )
        ])  # fmt: skip
    assert f"bad_{backend}" not in [d.name for _, d, _ in client.feature_definitions()]


def test_apply_contract_scrubs_stored_profiles_of_pii_columns(client, backend, world):
    from sqlalchemy import select

    from plinth.catalog.models import Profile
    from plinth.quality.profiles import profile_version

    table = f"people_{backend}"
    world.ws.lake.ingest(pa.table({"id": [1, 2], "email": ["a@x.org", "b@x.org"]}), table=table)
    assert "top" in profile_version(world.ws.lake, table, 0)["columns"]["email"]
    applied = client.apply_contract(f"table: {table}\ncolumns:\n  email: {{pii: hash}}\n")
    assert applied.contract.pii_columns() == {"email": "hash"}
    with world.ws.catalog.session() as session:
        stored = [r.columns["email"] for r in
                  session.scalars(select(Profile).where(Profile.table_name == table))]  # fmt: skip
    assert stored and all(c.get("pii") and "top" not in c for c in stored)
    assert "a@x.org" not in json.dumps(client.table_profile(table))


# -- the CLI -------------------------------------------------------------------------------


def test_contract_apply_list_and_show_through_the_server(
    capsys, remote_env, world: World, tmp_path, monkeypatch
):
    folder = tmp_path / "contracts"
    folder.mkdir()
    path = folder / "airports.yaml"
    path.write_text("table: airports\ncolumns:\n  code: {not_null: true, max_length: 3}\n")
    remote_env(True)
    code, out, err = cli(capsys, "contract", "apply", str(path))
    assert code == 0, err
    assert squeezed(out) == squeezed(f"airports: contract v1 applied ({path})")
    assert world.ws.quality.contract("airports").origin == str(path)
    local, remote = both(capsys, remote_env, world, "contract", "apply", str(path))
    assert remote == local and "unchanged" in remote
    for args in (
        ("contract", "list"),
        ("contract", "list", "--json"),
        ("contract", "show", "airports"),
        ("contract", "show", "airports", "--version", "1"),
    ):
        local, remote = both(capsys, remote_env, world, *args)
        assert remote == local and "airports" in remote, args
    path.write_text("table: airports\ncolumns:\n  code: {not_null: true}\n")
    monkeypatch.setenv("PLINTH_CONTRACTS_DIR", str(folder))
    remote_env(True)
    code, out, err = cli(capsys, "contract", "apply")  # every contracts/*.yaml
    assert code == 0, err
    assert squeezed(out) == squeezed(f"airports: contract v2 applied ({path})")


def test_contract_errors_through_the_server_are_the_local_errors(
    capsys, remote_env, world: World, tmp_path, monkeypatch
):
    bad = tmp_path / "bad.yaml"
    bad.write_text("table: airports\ncolumns:\n  code: {minimum: 1}\n")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("table: airports\ncolumns:\n  nope: {min: 1}\n")
    for args, message in (
        (("contract", "show", "nope"), "Table 'nope' has no contract."),
        (("contract", "apply", str(bad)), "is not a valid contract: line 3"),
        (("contract", "apply", str(unknown)), "names columns the table does not have"),
    ):
        texts = []
        for remote in (False, True):
            remote_env(remote)
            extra = () if remote else ("--home", str(world.settings.home))
            code, out, err = cli(capsys, *args, *extra)
            assert code == 1 and not out and "Traceback" not in err, args
            texts.append(" ".join(err.split()))
        assert texts[0] == texts[1] and message in texts[1], texts
    monkeypatch.setenv("PLINTH_CONTRACTS_DIR", str(tmp_path / "empty"))
    remote_env(True)
    code, _, err = cli(capsys, "contract", "apply")
    assert code == 1 and "No contract files in" in err
    monkeypatch.setenv("PLINTH_TOKEN", world.viewer_token)
    code, _, err = cli(capsys, "contract", "apply", str(unknown))
    assert code == 1 and "may not tables:write" in " ".join(err.split())


def test_features_apply_through_the_server(capsys, remote_env, world: World, tmp_path):
    path = tmp_path / "features.py"
    path.write_text(
        "import plinth\n"
        "code = plinth.Entity('code_cli', join_keys=['code'])\n"
        "airport = plinth.FeatureView('airport_cli', source='airports', entities=[code],\n"
        "                             timestamp=None, features={'code_len': 'length(code)'})\n"
    )
    remote_env(True)
    code, out, err = cli(capsys, "features", "apply", str(path))
    assert code == 0, err
    assert out.split("\n")[:2] == ["entity code_cli: v1 created", "view airport_cli: v1 created"]
    local, remote = both(capsys, remote_env, world, "features", "apply", str(path))
    assert remote == local and remote.count("unchanged") == 2
    local, remote = both(capsys, remote_env, world, "features", "list")
    assert remote == local and "airport_cli" in remote


def test_features_apply_errors_through_the_server(capsys, remote_env, world: World, tmp_path):
    path = tmp_path / "stray.py"
    path.write_text(
        "import plinth\n"
        "stray = plinth.FeatureView('stray', source='nope', entities=[plinth.Entity('id')],\n"
        "                           timestamp=None, features=['x'])\n"
    )
    texts = []
    for remote in (False, True):
        remote_env(remote)
        extra = () if remote else ("--home", str(world.settings.home))
        code, out, err = cli(capsys, "features", "apply", str(path), *extra)
        assert code == 1 and not out and "Traceback" not in err
        texts.append(" ".join(err.split()))
    assert texts[0] == texts[1] and "view 'stray' reads table 'nope'" in texts[1]
    remote_env(True)
    code, _, err = cli(capsys, "features", "apply", str(tmp_path / "missing.py"))
    assert code == 1 and "does not exist" in err  # loaded here, before anything is sent


def test_a_viewer_token_cannot_apply_features(capsys, remote_env, world, tmp_path, monkeypatch):
    path = tmp_path / "features.py"
    path.write_text("import plinth\nviewer_entity = plinth.Entity('viewer_entity')\n")
    remote_env(True)
    monkeypatch.setenv("PLINTH_TOKEN", world.viewer_token)
    code, _, err = cli(capsys, "features", "apply", str(path))
    assert code == 1 and "may not features:write" in " ".join(err.split())
    assert "viewer_entity" not in [d.name for _, d, _ in world.ws.features.definitions()]


def test_contract_text_errors_before_sending(client):
    with pytest.raises(ContractError, match="a contract must be a mapping"):
        client.apply_contract("just text\n")
