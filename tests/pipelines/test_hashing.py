"""Code hashes and cache keys: what changes them and what does not."""

from __future__ import annotations

import json

import pytest

from plinth.pipelines.hashing import cache_key, canonical_json, code_hash, is_user_module
from tests.pipelines import flows

BASE = """
import json
from plinth.pipelines import step

FACTOR = 2

def helper(x):
    return x * FACTOR

class Scaler:
    def apply(self, x):
        return helper(x)

@step(retries=1)
def work(values):
    return [Scaler().apply(v) for v in values] + [json.dumps(v) for v in values]

@step
def other(values):
    return values
"""


def variant(module_writer, old: str, new: str) -> str:
    source = BASE.replace(old, new)
    assert source != BASE or old == new
    return code_hash(module_writer("hashmod", source).work)


@pytest.fixture
def base_hash(module_writer) -> str:
    return code_hash(module_writer("hashmod", BASE).work)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("return [Scaler()", "return 1 + [Scaler()"),  # the step's body
        ("return x * FACTOR", "return x * FACTOR + 1"),  # a helper it calls through a class
        ("FACTOR = 2", "FACTOR = 3"),  # a constant the helper reads
        ("    def apply(self, x):", "    def apply(self, x, y=0):"),  # the class
    ],
)
def test_changes_to_the_step_or_the_user_code_it_calls_change_the_hash(
    module_writer, base_hash, old, new
):
    assert variant(module_writer, old, new) != base_hash


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("@step(retries=1)", "@step(retries=5)"),  # options do not change what it computes
        ("def work(values):", "def work(values):  # a comment"),
        ("def other(values):\n    return values", "def other(values):\n    return 1"),
        ("import json\n", "import json\n\n\n"),  # blank lines move the code
    ],
)
def test_cosmetic_or_unrelated_changes_keep_the_hash(module_writer, base_hash, old, new):
    assert variant(module_writer, old, new) == base_hash


def test_closures_and_library_code():
    def make(threshold: float):
        def inner(x):
            return x > threshold

        return inner

    assert code_hash(make(0.5)) != code_hash(make(0.6))
    assert code_hash(make(0.5)) == code_hash(make(0.5))
    assert not is_user_module("json") and not is_user_module("sqlalchemy")
    assert not is_user_module("plinth.pipelines.runner")
    assert is_user_module(flows.__name__)


def test_cache_keys_cover_params_tables_and_outputs():
    code = "0" * 64
    key = cache_key(code, {"n": 1}, {"events": 3}, ["output"])
    assert key == cache_key(code, {"n": 1}, {"events": 3}, ["output"])
    assert key != cache_key(code, {"n": 2}, {"events": 3}, ["output"])
    assert key != cache_key(code, {"n": 1}, {"events": 4}, ["output"])
    assert key != cache_key(code, {"n": 1}, {"events": 3}, ["other"])
    assert key != cache_key("1" * 64, {"n": 1}, {"events": 3}, ["output"])


def test_canonical_json_is_stable_and_strict():
    assert canonical_json({"b": [1, 2], "a": {"y": 1, "x": 2}}) == '{"a":{"x":2,"y":1},"b":[1,2]}'
    assert json.loads(canonical_json({"s": {3, 1}})) == {"s": [1, 3]}
    with pytest.raises(TypeError):
        canonical_json({"f": float("inf")})
    with pytest.raises(TypeError):
        canonical_json({"o": object()})
