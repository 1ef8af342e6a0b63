"""Model URIs: ``models:/delay@champion``, ``models:/delay/3``, ``delay@champion``, ``delay:3``,
``delay`` (the latest version), and the names and aliases they are built from.

Example:
    >>> parse_uri("models:/delay@champion")
    ModelRef(name='delay', version=None, alias='champion')
    >>> str(parse_uri("delay:3"))
    'models:/delay/3'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from plinth.errors import ConfigError

#: A model name: a letter, then letters, digits, ``_``, ``.`` or ``-``; at most 128 characters.
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")
#: An alias: a lowercase letter, then lowercase letters, digits, ``_`` or ``-``; at most 64.
ALIAS_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
#: The alias every model has implicitly: its newest version. It cannot be set.
LATEST = "latest"
SCHEME = "models:/"
_FORMS = "models:/NAME@ALIAS, models:/NAME/VERSION, NAME@ALIAS, NAME:VERSION or NAME"


@dataclass(frozen=True)
class ModelRef:
    """A parsed model URI: a name and a version number, an alias, or neither (the latest).

    Example:
        >>> ModelRef("delay", alias="champion").uri
        'models:/delay@champion'
    """

    name: str
    version: int | None = None
    alias: str | None = None

    @property
    def uri(self) -> str:
        """The canonical URI: ``models:/name/3``, ``models:/name@alias`` or ``models:/name``."""
        if self.version is not None:
            return f"{SCHEME}{self.name}/{self.version}"
        if self.alias is not None:
            return f"{SCHEME}{self.name}@{self.alias}"
        return f"{SCHEME}{self.name}"

    def __str__(self) -> str:
        return self.uri


def check_name(name: str) -> str:
    """Return ``name`` if it is a usable model name; raise :class:`ConfigError` otherwise.

    Example:
        >>> check_name("delay-model")
        'delay-model'
    """
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ConfigError(
            f"{name!r} is not a valid model name.",
            hint="Start with a letter; then use letters, digits, '_', '.' or '-' "
            "(at most 128 characters).",
        )
    return name


def check_alias(alias: str, *, settable: bool = False) -> str:
    """Return ``alias`` if it is a valid alias name; ``settable`` also refuses ``latest``.

    Example:
        >>> check_alias("champion")
        'champion'
    """
    if not isinstance(alias, str) or not ALIAS_PATTERN.match(alias):
        raise ConfigError(
            f"{alias!r} is not a valid alias.",
            hint="An alias matches [a-z][a-z0-9_-]* (at most 64 characters), "
            "like 'champion' or 'challenger'.",
        )
    if settable and alias == LATEST:
        raise ConfigError(
            "The alias 'latest' is reserved: it always means the newest version.",
            hint="Choose another alias name, like 'champion'.",
        )
    return alias


def _version(text: str, uri: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(
            f"'{uri}' names version '{text}', which is not a version number.",
            hint="Versions are whole numbers from 1; or use an alias, as in NAME@champion.",
        )
    return int(text)


def parse_uri(uri: str) -> ModelRef:
    """Parse a model URI into a :class:`ModelRef`; raise :class:`ConfigError` if malformed.

    Accepted forms: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``models:/NAME``,
    ``NAME@ALIAS``, ``NAME:VERSION`` and ``NAME``. ``NAME@latest`` and
    ``models:/NAME/latest`` mean the newest version, like ``NAME``.

    Example:
        >>> parse_uri("models:/delay/3").version
        3
        >>> parse_uri("delay").alias is None
        True
    """
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigError("An empty model URI was given.", hint=f"Write one of: {_FORMS}.")
    text = uri.strip()
    body = text
    prefixed = text.startswith(SCHEME)
    if prefixed:
        body = text[len(SCHEME) :]
    elif text.startswith("models:"):
        raise ConfigError(
            f"'{uri}' is not a model URI: the scheme is written 'models:/'.",
            hint=f"Write one of: {_FORMS}.",
        )
    name, version, alias = body, None, None
    if "@" in body:
        name, _, alias = body.partition("@")
    elif prefixed and "/" in body:
        name, _, rest = body.partition("/")
        if rest == LATEST:
            alias = LATEST
        else:
            version = _version(rest, uri)
    elif not prefixed and ":" in body:
        name, _, rest = body.partition(":")
        version = _version(rest, uri)
    if not NAME_PATTERN.match(name):
        raise ConfigError(
            f"'{uri}' is not a model URI: {name!r} is not a valid model name.",
            hint=f"Write one of: {_FORMS}. Names start with a letter; then letters, "
            "digits, '_', '.' or '-'.",
        )
    if alias is not None:
        check_alias(alias)
        if alias == LATEST:
            alias = None
    return ModelRef(name, version, alias)
