"""Model URIs: every accepted form, and clear errors for malformed ones."""

from __future__ import annotations

import pytest

from plinth.errors import ConfigError
from plinth.registry.uri import ModelRef, check_alias, check_name, parse_uri


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("models:/delay@champion", ModelRef("delay", alias="champion")),
        ("models:/delay/3", ModelRef("delay", version=3)),
        ("models:/delay", ModelRef("delay")),
        ("models:/delay/latest", ModelRef("delay")),
        ("delay@champion", ModelRef("delay", alias="champion")),
        ("delay@latest", ModelRef("delay")),
        ("delay:3", ModelRef("delay", version=3)),
        ("delay", ModelRef("delay")),
        ("  delay-model.v2:12 ", ModelRef("delay-model.v2", version=12)),
        ("Delay_2@shadow-a", ModelRef("Delay_2", alias="shadow-a")),
    ],
)
def test_good_uris(uri, expected):
    assert parse_uri(uri) == expected


def test_canonical_form_round_trips():
    for text in ("models:/delay/3", "models:/delay@champion", "models:/delay"):
        assert parse_uri(text).uri == text
        assert parse_uri(str(parse_uri(text))) == parse_uri(text)
    assert str(parse_uri("delay:3")) == "models:/delay/3"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("", "empty model URI"),
        ("models:delay/3", "scheme is written 'models:/'"),
        ("models:/delay/0", "not a version number"),
        ("models:/delay/x", "not a version number"),
        ("delay:-1", "not a version number"),
        ("delay:", "not a version number"),
        ("delay@Champion", "not a valid alias"),
        ("delay@1st", "not a valid alias"),
        ("delay@", "not a valid alias"),
        ("3delay", "not a valid model name"),
        ("de lay", "not a valid model name"),
        ("models:/", "not a valid model name"),
        ("delay/3", "not a valid model name"),
        ("@champion", "not a valid model name"),
    ],
)
def test_bad_uris(uri, message):
    with pytest.raises(ConfigError, match=message) as caught:
        parse_uri(uri)
    assert caught.value.hint


def test_names_and_aliases():
    assert check_name("delay") == "delay"
    with pytest.raises(ConfigError, match="not a valid model name"):
        check_name("x" * 129)
    assert check_alias("champion") == "champion"
    assert check_alias("latest") == "latest"
    with pytest.raises(ConfigError, match="reserved"):
        check_alias("latest", settable=True)
    with pytest.raises(ConfigError, match=r"\[a-z\]"):
        check_alias("a" * 65)
