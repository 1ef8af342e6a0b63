"""Stored models are verified: tampered bytes raise IntegrityError and are never unpickled;
a pickle from a folder whose manifest the catalog does not hold is refused."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import plinth
from plinth.errors import IntegrityError, NotFoundError
from plinth.registry.service import Registry
from plinth.registry.store import MANIFEST


class _Exploit:
    """Unpickling this creates the file named in ``path`` (proof that code ran)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (Path(self.path),))


def _model():
    from sklearn.linear_model import LinearRegression

    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0], "b": [1.0, 0.0, 1.0]})
    return LinearRegression().fit(frame, [0.0, 2.0, 4.0]), frame


def _no_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("pickle.loads was called")

    monkeypatch.setattr(pickle, "loads", refuse)


def _overwrite(ws: plinth.Workspace, digest: str, data: bytes) -> None:
    """Replace a stored artifact's bytes behind the store's back."""
    ws.storage.put_bytes(ws.artifacts._key(digest), data)


def test_tampered_model_file_is_refused_before_unpickling(workspace, tmp_path, monkeypatch):
    model, frame = _model()
    info = workspace.models.register(model, "lin", example=frame)
    marker = tmp_path / "unpickled"
    _overwrite(workspace, info.files["model.pkl"], pickle.dumps(_Exploit(str(marker))))
    _no_unpickling(monkeypatch)
    with pytest.raises(IntegrityError, match="corrupted") as caught:
        Registry(workspace).load("lin:1")
    assert caught.value.hint
    assert not marker.exists()


def test_tampered_manifest_is_refused(workspace, tmp_path):
    model, frame = _model()
    info = workspace.models.register(model, "lin", example=frame)
    _overwrite(workspace, info.manifest_digest, b'{"format": 1}')
    with pytest.raises(IntegrityError, match="corrupted"):
        Registry(workspace).load("lin")


def test_a_catalog_row_pointing_at_other_files_is_refused(ws):
    from sqlalchemy import update

    from plinth.catalog.models import ModelVersion

    model, frame = _model()
    first = ws.models.register(model, "lin", signature=None)
    other = ws.models.register(model.fit(frame, [1.0, 1.0, 1.0]), "lin", signature=None)
    with ws.catalog.session() as session:
        session.execute(
            update(ModelVersion)
            .where(ModelVersion.version == 1)
            .values(manifest_digest=other.manifest_digest, files=first.files)
        )
    with pytest.raises(IntegrityError, match="lists other files than the catalog"):
        Registry(ws).load("lin:1")


def test_cache_is_per_version_digest(ws):
    model, frame = _model()
    ws.models.register(model, "lin", example=frame)
    first = ws.models.load("lin")
    assert ws.models.load("models:/lin/1") is first
    ws.models.register(model, "lin", example=frame, description="again")
    second = ws.models.load("lin")
    assert second is not first and second.version == 2
    assert ws.models.load("lin:1") is first


def test_export_and_load_a_folder_in_the_same_workspace(ws, tmp_path):
    model, frame = _model()
    ws.models.register(model, "lin", example=frame)
    folder = ws.models.export("lin", tmp_path / "out")
    assert sorted(p.name for p in folder.iterdir()) == [
        "input_example.parquet",
        MANIFEST,
        "model.pkl",
    ]
    loaded = ws.models.load_path(folder)
    assert (loaded.name, loaded.version) == ("lin", 1)
    assert np.allclose(loaded.predict(frame), model.predict(frame))
    assert ws.models.load_path(folder / MANIFEST).signature == loaded.signature


def test_foreign_pickle_is_refused_without_unpickling(ws, tmp_path, monkeypatch):
    model, frame = _model()
    ws.models.register(model, "lin", example=frame)
    folder = ws.models.export("lin", tmp_path / "out")
    marker = tmp_path / "unpickled"
    (folder / "model.pkl").write_bytes(pickle.dumps(_Exploit(str(marker))))
    manifest = json.loads((folder / MANIFEST).read_bytes())
    import hashlib

    manifest["files"]["model.pkl"]["digest"] = hashlib.sha256(
        (folder / "model.pkl").read_bytes()
    ).hexdigest()
    (folder / MANIFEST).write_text(json.dumps(manifest))
    _no_unpickling(monkeypatch)
    with pytest.raises(IntegrityError, match="not in this workspace's catalog") as caught:
        ws.models.load_path(folder)
    assert "never loaded" in caught.value.message and caught.value.hint
    assert not marker.exists()


def test_another_workspace_refuses_a_pickle_but_loads_a_booster(tmp_path):
    lgb = pytest.importorskip("lightgbm")
    model, frame = _model()
    settings = plinth.Settings(home=tmp_path / "a", user="tester")
    with plinth.Workspace(settings=settings) as a:
        a.models.register(model, "lin", example=frame)
        pickled = a.models.export("lin", tmp_path / "pickled")
        booster = lgb.train(
            {"objective": "regression", "verbosity": -1, "num_threads": 1, "min_data_in_leaf": 1},
            lgb.Dataset(frame, [0.0, 2.0, 4.0]),
            num_boost_round=2,
        )
        a.models.register(booster, "gbm", example=frame)
        text = a.models.export("gbm", tmp_path / "booster")
    with plinth.Workspace(settings=plinth.Settings(home=tmp_path / "b", user="tester")) as b:
        with pytest.raises(IntegrityError, match="sklearn pickle"):
            b.models.load_path(pickled)
        loaded = b.models.load_path(text)
        assert loaded.name is None and loaded.label.startswith("sha256:")
        assert np.array_equal(loaded.predict(frame), booster.predict(frame))


def test_altered_files_in_a_folder_are_refused(ws, tmp_path):
    model, frame = _model()
    ws.models.register(model, "lin", example=frame)
    folder = ws.models.export("lin", tmp_path / "out")
    (folder / "model.pkl").write_bytes(b"garbage")
    with pytest.raises(IntegrityError, match="hashes to"):
        ws.models.load_path(folder)
    (folder / "model.pkl").unlink()
    with pytest.raises(NotFoundError, match="is missing"):
        ws.models.load_path(folder)
    with pytest.raises(NotFoundError, match="no model manifest"):
        ws.models.load_path(tmp_path / "nowhere")
    (folder / MANIFEST).write_text(json.dumps({"format": 1, "flavor": "sklearn", "meta": {},
                                                "files": {"../x": {"digest": "0"}}}))  # fmt: skip
    with pytest.raises(IntegrityError, match="not a plain file name"):
        ws.models.load_path(folder)
    (folder / MANIFEST).write_text("not json")
    with pytest.raises(IntegrityError, match="not a Plinth manifest"):
        ws.models.load_path(folder)
