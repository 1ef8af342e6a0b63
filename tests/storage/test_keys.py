"""Storage key validation: which names ``safe_key`` accepts, normalizes and refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from plinth.errors import StorageError, UnsafePathError
from plinth.storage.keys import safe_key

ACCEPTED = [
    ("a", "a"),
    ("a/b.c", "a/b.c"),
    ("a//b", "a/b"),
    ("a/b/", "a/b"),
    ("models/x-1_2.bin", "models/x-1_2.bin"),
    ("..a/b..", "..a/b.."),
    ("a/...", "a/..."),
]

REFUSED = [
    "",
    "/abs",
    "../x",
    "a/../b",
    "a/..",
    "./a",
    "a/./b",
    ".",
    "//",
    "%2e%2e/x",
    "%2E%2E/x",
    "a%2Fb",
    "a%2fb",
    "a%00b",
    "C:/x",
    "c:x",
    "a\\b",
    "..\\x",
    "~/x",
    "~root",
    "a\x00b",
    "a\nb",
    "a\rb",
    "a\tb",
    "a\x7fb",
]


@pytest.mark.parametrize(("name", "expected"), ACCEPTED)
def test_accepted_names_are_normalized(name: str, expected: str) -> None:
    assert safe_key(name) == expected


@pytest.mark.parametrize("name", REFUSED)
def test_refused_names_raise_unsafe_path_error_naming_the_input(name: str) -> None:
    with pytest.raises(UnsafePathError) as info:
        safe_key(name)
    assert repr(name) in str(info.value)
    assert isinstance(info.value, StorageError)


@pytest.mark.parametrize("name", [None, 3, b"a"])
def test_non_string_names_are_refused(name: object) -> None:
    with pytest.raises(UnsafePathError):
        safe_key(name)  # type: ignore[arg-type]


def test_normalized_keys_are_fixed_points() -> None:
    for name, expected in ACCEPTED:
        assert safe_key(safe_key(name)) == expected


# A root that does not exist, so that resolve() is purely lexical and no symbolic link on this
# machine can influence the outcome.
ROOT = Path("/nonexistent-plinth-root")


def test_property_no_text_escapes_the_root() -> None:
    hypothesis = pytest.importorskip("hypothesis")
    strategies = pytest.importorskip("hypothesis.strategies")

    alphabet = strategies.sampled_from(["a", "b", ".", "/", "\\", "%", "2", "e", "~", ":", "\x00"])
    names = strategies.one_of(strategies.text(), strategies.text(alphabet=alphabet))

    @hypothesis.settings(max_examples=500, deadline=None)
    @hypothesis.given(names)
    def check(name: str) -> None:
        try:
            key = safe_key(name)
        except UnsafePathError:
            return
        resolved = (ROOT / key).resolve()
        assert resolved != ROOT
        assert ROOT in resolved.parents
        assert safe_key(key) == key

    check()
