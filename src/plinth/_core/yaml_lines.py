"""YAML files with errors people can act on: loading with the failing line named, and the line
of the node at a pydantic location."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plinth.errors import ConfigError


def load_yaml(text: str, origin: str, what: str, error: type[ConfigError] = ConfigError) -> Any:
    """Parse YAML ``text``; a syntax error becomes ``error`` naming ``origin``, the line and
    ``what`` the file is.

    Example:
        >>> load_yaml("a: 1", "f.yaml", "rules file")
        {'a': 1}
    """
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{origin}, line {mark.line + 1}" if mark else origin
        raise error(
            f"{where}: the {what} is not valid YAML ({getattr(exc, 'problem', exc)}).",
            hint="Fix the YAML syntax (indentation, quotes, colons).",
        ) from exc


def line_of(
    text: str, loc: tuple[Any, ...], aliases: Mapping[str, str] | None = None
) -> int | None:
    """The 1-based line in YAML ``text`` of the node at pydantic ``loc`` (or its nearest parent).

    ``aliases`` maps a field name in ``loc`` to the key written in the file when they differ.

    Example:
        >>> line_of("a:\\n  b: [1, 2]\\n", ("a", "b", 1))
        2
    """
    import yaml

    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    names = aliases or {}
    line = None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            key = names.get(part, part) if isinstance(part, str) else part
            found = next(((k, v) for k, v in node.value if k.value in (part, key)), None)
            if found is None:
                return line
            line = found[0].start_mark.line + 1
            node = found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
