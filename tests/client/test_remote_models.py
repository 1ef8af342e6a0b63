"""Models through the server: ``run.log_model`` on a remote run and ``register_model``
register versions as locally (same packaging, manifest, signature, example, lineage, version
numbers and audit, as the token's owner), the uploads and the registration route refuse a
viewer and bad input with 4xx JSON, and ``plinth models diff``, ``alias history`` and
``export`` print through the server what they print locally."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import plinth
from plinth.cli.main import main
from plinth.client import LocalClient, RemoteClient, RemoteRun
from plinth.governance.access import Forbidden
from plinth.workspace import Workspace
from tests.client.conftest import World


def _data() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    x = rng.normal(size=100)
    return pd.DataFrame({"x": x, "y": (x + rng.normal(size=100) > 0).astype(int)})


def _model(c: float = 1.0):
    from sklearn.linear_model import LogisticRegression

    data = _data()
    return LogisticRegression(C=c).fit(data[["x"]], data["y"])


@pytest.fixture
def admin(world: World):
    assert world.server is not None
    with RemoteClient(world.server.url, world.admin_token) as made:
        yield made


@pytest.fixture
def local(world: World):
    with LocalClient(Workspace(settings=world.settings), own=True) as made:
        yield made


def _http(world: World, method: str, path: str, token: str, **options):
    import httpx

    assert world.server is not None
    return httpx.request(
        method,
        f"{world.server.url}/api/v1{path}",
        headers={"Authorization": f"Bearer {token}"},
        **options,
    )


def test_log_model_on_a_remote_run_registers_what_a_local_run_registers(world, admin, local):
    model, example = _model(), _data()[["x"]].head(5)
    made = {}
    for label, client in (("local", local), ("remote", admin)):
        with client.start_run(f"log-{label}") as run:
            run.log_metric("auc", 0.71)  # buffered remotely: sent before registering
            run.use("flights@1")
            made[label] = (run.id, run.log_model(model, f"lm-{label}", example=example,
                                                 tags={"team": "ops"}))  # fmt: skip
    (_, mine), (remote_run, theirs) = made["local"], made["remote"]
    assert isinstance(run, RemoteRun)
    assert theirs.version == mine.version == 1
    # Same packaging: the same files, example, signature and so the same manifest.
    assert theirs.manifest_digest == mine.manifest_digest
    assert theirs.files == mine.files and theirs.example_digest == mine.example_digest
    assert theirs.signature.to_dict() == mine.signature.to_dict()
    assert theirs.flavor == "sklearn" and theirs.run_id == remote_run
    assert theirs.metrics == {"auc": 0.71} == mine.metrics
    stored = world.ws.models.get("lm-remote:1")
    subject = admin.whoami().subject
    assert stored.details["tags"] == {"team": "ops"} and stored.created_by == subject
    # Lineage: table version -> run -> model version, on the server's catalog.
    from plinth.governance.lineage import lineage

    graph = lineage(world.ws, "lm-remote:1", "up")
    assert f"run:{remote_run}" in graph.nodes
    assert any(key.startswith("table_version:") and "flights" in key for key in graph.nodes)
    # Loadable on the server, predicting what the model predicts.
    rows = _data()[["x"]].head(20)
    loaded = world.ws.models.load("lm-remote:1")
    assert np.array_equal(loaded.predict(rows), model.predict(rows))
    assert world.ws.models.example("lm-remote:1").equals(example.reset_index(drop=True))
    # Audited as the token's owner, as the local path audits the workspace user.
    found = admin.audit("model:lm-remote", action="model.register")
    assert [(e.actor, e.resource) for e in found] == [(subject, "model:lm-remote:1")]


class _Tripwire(LogisticRegression):
    """A classifier that leaves a file behind whenever it is unpickled."""

    marker: Path | None = None

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        if _Tripwire.marker is not None:
            _Tripwire.marker.write_text("loaded")


def test_the_server_never_loads_a_clients_model_files(world, admin, local, tmp_path):
    from datetime import UTC, datetime

    import pyarrow as pa

    spine = pa.table({"id": [1, 2, 4], "event_timestamp": [datetime.now(UTC)] * 3})
    ts = world.ws.features.historical(spine, "delay_svc")
    column = "delays__delay"
    frame = pd.DataFrame({column: [1.0, 2.0, 0.5, 3.0], "y": [0, 1, 0, 1]})
    model = _Tripwire().fit(frame[[column]], frame["y"])
    _Tripwire.marker = tmp_path / "unpickled"
    try:
        # Only the training set's id: the server infers the inputs from its data and leaves
        # the outputs out, where a local registration (which may load the model) has both.
        theirs = admin.register_model(model, "trip", training_set=ts.id)
        assert not _Tripwire.marker.exists()
        mine = local.register_model(model, "trip-local", training_set=ts.id)
    finally:
        _Tripwire.marker = None
    assert theirs.signature is not None and mine.signature is not None
    assert theirs.signature.inputs == mine.signature.inputs
    assert not theirs.signature.describe_outputs() and mine.signature.describe_outputs()


def test_register_model_numbers_versions_and_infers_the_signature_from_the_training_set(
    world, admin, local
):
    from datetime import UTC, datetime

    import pyarrow as pa

    now = datetime.now(UTC)
    spine = pa.table({"id": [1, 2, 4], "event_timestamp": [now] * 3})  # no missing delay
    ts = world.ws.features.historical(spine, "delay_svc")
    column = "delays__delay"  # the training set's name of the feature
    frame = pd.DataFrame({column: [1.0, 2.0, 0.5, 3.0], "y": [0, 1, 0, 1]})
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(frame[[column]], frame["y"])
    infos = {}
    for label, client in (("local", local), ("remote", admin)):
        first = client.register_model(model, f"ts-{label}", training_set=ts, features="delay_svc")
        second = client.register_model(_model(0.5), f"ts-{label}", signature=None,
                                       description="second")  # fmt: skip
        assert (first.version, second.version) == (1, 2)
        infos[label] = first
    mine, theirs = infos["local"], infos["remote"]
    assert theirs.training_set_id == ts.id == mine.training_set_id
    assert (theirs.feature_service, theirs.feature_service_version) == ("delay_svc", 1)
    assert theirs.signature is not None and theirs.signature.describe_outputs()
    assert theirs.signature.to_dict() == mine.signature.to_dict()
    assert theirs.manifest_digest == mine.manifest_digest
    assert world.ws.models.get("ts-remote:2").signature is None
    assert world.ws.models.get("ts-remote:2").description == "second"
    details = world.ws.models.get("ts-remote:1").details
    assert details["training_data"] == world.ws.models.get("ts-local:1").details["training_data"]


def test_bad_registrations_are_the_local_errors(admin, local):
    from plinth.errors import ConfigError, ModelNotFoundError, NotFoundError, RunNotFoundError

    for client in (local, admin):
        with pytest.raises(ConfigError, match="not a valid model name"):
            client.register_model(_model(), "9 bad")
        with pytest.raises(RunNotFoundError):
            client.register_model(_model(), "errs", run="run_nope")
        with pytest.raises(NotFoundError, match="has not been applied"):
            client.register_model(_model(), "errs", features="ghost")
        with pytest.raises(ConfigError, match="not understood"):
            client.register_model(_model(), "errs", signature="guess")
    with pytest.raises(ModelNotFoundError):
        admin.model("errs")


def test_the_routes_answer_4xx_json_to_bad_input(world):
    token = world.admin_token
    digest = "0" * 64
    body = {"flavor": "sklearn", "files": {"model.pkl": digest}}
    answer = _http(world, "POST", "/models/raw/versions", token, json=body)
    assert answer.status_code == 404
    assert "has not been uploaded" in answer.json()["error"]["message"]
    stored = _http(world, "POST", "/models/raw/files", token, content=b"not a model")
    assert stored.status_code == 201 and stored.json()["size"] == 11
    real = stored.json()["digest"]
    assert real == hashlib.sha256(b"not a model").hexdigest()
    cases = [
        ({"flavor": "nope", "files": {"model.pkl": real}}, 400, "not a model flavor"),
        ({"flavor": "sklearn", "files": {"model.pkl": real}, "signature": {"x": 1}}, 400,
         "signature"),
        ({"flavor": "sklearn", "files": {"../x": real}}, 400, None),
        ({"flavor": "sklearn", "files": {"model.pkl": "abc"}}, 400, None),
    ]  # fmt: skip
    for sent, status, text in cases:
        answer = _http(world, "POST", "/models/raw/versions", token, json=sent)
        assert answer.status_code in (status, 422), (sent, answer.text)
        assert "error" in answer.json() or "detail" in answer.json()
        if text:
            assert text in answer.text
    missing = _http(world, "GET", "/models/clf/versions/1/files/nothing.bin", token)
    assert missing.status_code == 404 and "has no file" in missing.json()["error"]["message"]
    unknown = _http(world, "GET", "/models/clf/versions/9/files/manifest.json", token)
    assert unknown.status_code == 404


def test_a_registration_takes_only_files_uploaded_for_that_model(world, admin):
    """A digest alone is no proof of having the bytes: a run artifact's digest (readable by
    anyone who may read runs) or a file uploaded for another model is refused."""
    token = world.admin_token
    with admin.start_run("receipts") as run:
        stored = run.log_artifact(b"someone else's bytes", "secret.bin")
    digest = next(a.digest for a in admin.run(run.id).artifacts if a.name == stored)
    body = {"flavor": "sklearn", "files": {"model.pkl": digest}}
    answer = _http(world, "POST", "/models/stolen/versions", token, json=body)
    assert answer.status_code == 404 and "has not been uploaded" in answer.text
    uploaded = _http(world, "POST", "/models/other/files", token, content=b"other model")
    model = uploaded.json()["digest"]
    body = {"flavor": "sklearn", "files": {"model.pkl": model}}
    answer = _http(world, "POST", "/models/stolen/versions", token, json=body)
    assert answer.status_code == 404 and "has not been uploaded" in answer.text
    # Registering spends the receipts: the files are the version's now.
    info = admin.register_model(_model(), "receipts-spent")
    again = _http(
        world, "POST", "/models/receipts-spent/versions", token,
        json={"flavor": "sklearn", "files": dict(info.files)},
    )  # fmt: skip
    assert again.status_code == 404


def test_an_upload_over_the_limit_answers_413(world, monkeypatch):
    from plinth.server.api import runs as runs_api

    monkeypatch.setattr(runs_api, "MAX_ARTIFACT_BYTES", 1000)
    answer = _http(world, "POST", "/models/big/files", world.admin_token, content=b"x" * 1001)
    assert answer.status_code == 413 and answer.json()["error"]["type"] == "PayloadTooLarge"


def test_a_viewer_token_cannot_register_but_can_export(world, tmp_path):
    assert world.server is not None
    with RemoteClient(world.server.url, world.viewer_token) as viewer:
        with pytest.raises(Forbidden, match="models:write"):
            viewer.register_model(_model(), "viewer-model")
        path = viewer.export_model("clf", 1, tmp_path / "out")
        assert (path / "manifest.json").is_file()
        assert viewer.alias_history("clf")
    for path in ("/models/viewer-model/files", "/models/viewer-model/versions"):
        answer = _http(world, "POST", path, world.viewer_token, json={})
        assert answer.status_code == 403 and "models:write" in answer.json()["error"]["message"]
    assert "viewer-model" not in {m.name for m in world.ws.models.list()}


def test_ws_run_in_remote_mode_logs_a_model_on_the_server(world, monkeypatch, tmp_path):
    assert world.server is not None
    monkeypatch.setenv("PLINTH_URL", world.server.url)
    monkeypatch.setenv("PLINTH_TOKEN", world.admin_token)
    monkeypatch.setenv("PLINTH_HOME", str(tmp_path / "local-ws"))
    monkeypatch.delenv("PLINTH_RUN_ID", raising=False)
    ws = plinth.Workspace()
    with ws.run("script") as run:
        info = run.log_model(_model(), "from-script", example=_data()[["x"]].head(3))
        # A script's ws.models.register goes to the server too.
        other = ws.models.register(_model(0.5), "from-script", run=run, description="again")
    assert info.run_id == run.id and world.ws.models.get("from-script").run_id == run.id
    assert other.version == info.version + 1
    assert world.ws.models.get(f"from-script:{other.version}").description == "again"
    assert not (tmp_path / "local-ws" / "catalog.db").exists()


# -- the CLI -------------------------------------------------------------------------------


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def both(capsys, monkeypatch, world: World, *args: str) -> tuple[str, str]:
    """The output of one command run locally (--home) and then through the server."""
    assert world.server is not None
    monkeypatch.delenv("PLINTH_URL", raising=False)
    code, mine, err = cli(capsys, *args, "--home", str(world.settings.home))
    assert code == 0, err
    monkeypatch.setenv("PLINTH_URL", world.server.url)
    monkeypatch.setenv("PLINTH_TOKEN", world.admin_token)
    code, theirs, err = cli(capsys, *args)
    assert code == 0, err
    return mine, theirs


@pytest.mark.parametrize(
    "args",
    [
        ("models", "diff", "clf:1", "clf:2"),
        ("models", "diff", "clf@champion", "clf", "--json"),
        ("models", "alias", "history", "clf"),
        ("models", "alias", "history", "clf", "champion", "--json"),
        ("models", "alias", "history", "clf", "ghost"),
    ],
    ids=lambda a: " ".join(a),
)
def test_diff_and_alias_history_print_what_they_print_locally(capsys, monkeypatch, world, args):
    mine, theirs = both(capsys, monkeypatch, world, *args)
    assert theirs == mine and theirs.strip()


def test_export_writes_the_same_folder_and_prints_the_same(capsys, monkeypatch, world, tmp_path):
    folder = tmp_path / "exported"
    mine, theirs = both(capsys, monkeypatch, world, "models", "export", "clf@champion", str(folder))
    assert theirs == mine and "Exported clf version 1 to" in theirs
    files = sorted(p.name for p in folder.iterdir())
    assert files == sorted(["manifest.json", *world.ws.models.get("clf:1").files])
    loaded = world.ws.models.load_path(folder)
    assert (loaded.name, loaded.version) == ("clf", 1)


def test_remote_model_commands_fail_as_local_ones(capsys, monkeypatch, world, tmp_path):
    assert world.server is not None
    monkeypatch.setenv("PLINTH_URL", world.server.url)
    monkeypatch.setenv("PLINTH_TOKEN", world.admin_token)
    for args in (
        ("models", "diff", "clf:1", "ghost:1"),
        ("models", "alias", "history", "ghost"),
        ("models", "export", "ghost", str(tmp_path / "x")),
    ):
        code, out, err = cli(capsys, *args)
        assert code == 1 and not out and "Traceback" not in err
        assert "No model is registered under the name 'ghost'" in " ".join(err.split())


def test_export_refuses_a_file_altered_on_the_way(admin, world, tmp_path, monkeypatch):
    from plinth.client import _remote_models
    from plinth.errors import IntegrityError

    real = _remote_models.download

    def tampered(client, path, target, digest):
        return real(client, path, target, "f" * 64 if target.name != "manifest.json" else digest)

    monkeypatch.setattr(_remote_models, "download", tampered)
    with pytest.raises(IntegrityError, match="hashes to"):
        admin.export_model("clf", 1, tmp_path / "bad")
    assert not (tmp_path / "bad" / "manifest.json").exists()


def test_the_new_routes_are_in_the_openapi_spec(world):
    import httpx

    assert world.server is not None
    paths = httpx.get(f"{world.server.url}/openapi.json").json()["paths"]
    upload = paths["/api/v1/models/{name}/files"]["post"]
    assert "application/octet-stream" in upload["requestBody"]["content"]
    assert "post" in paths["/api/v1/models/{name}/versions"]
    assert "get" in paths["/api/v1/models/{name}/versions/{version}/files/{file}"]
    assert "get" in paths["/api/v1/models/{name}/alias-history"]
    assert "get" in paths["/api/v1/models/{name}/versions/{version}/diff/{other}/{other_version}"]


def test_exported_files_match_the_digests(admin, world, tmp_path):
    info = world.ws.models.get("clf:2")
    path = admin.export_model("clf", 2, Path(tmp_path) / "two")
    for name, digest in info.files.items():
        assert hashlib.sha256((path / name).read_bytes()).hexdigest() == digest
