"""Traffic routing for one served model: weighted versions (canary) and a shadow.

A :class:`RouteTable` is immutable; hot reload builds a new one (loading any version it does
not hold yet) and swaps it in on the event loop in one assignment, so a request sees either
the old table or the new one, never a mix, and the versions it already chose finish their
work.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass

from plinth.serving.served import ServedVersion


@dataclass(frozen=True)
class RouteEntry:
    """One weighted destination: the URI it was named by, and the version it resolved to."""

    uri: str
    weight: float
    served: ServedVersion
    label: str


class RouteTable:
    """The versions taking a model's traffic, chosen at random by weight, and its shadow.

    Example:
        >>> # table = RouteTable("delay", [RouteEntry("delay@champion", 90, v3, "primary"),
        >>> #                              RouteEntry("delay:4", 10, v4, "canary")])
        >>> # route, served = table.choose()
    """

    def __init__(
        self,
        model: str,
        entries: list[RouteEntry],
        shadow: ServedVersion | None = None,
        shadow_uri: str | None = None,
        revision: int | None = None,
    ) -> None:
        self.model = model
        self.entries = entries
        self.shadow = shadow
        self.shadow_uri = shadow_uri
        self.revision = revision
        total = sum(e.weight for e in entries)
        running = 0.0
        self._bounds: list[float] = []
        for entry in entries:
            running += entry.weight / total
            self._bounds.append(running)
        self._bounds[-1] = 1.0
        self._random = random.Random()

    def choose(self) -> RouteEntry:
        """A destination drawn by weight (the only one when there is one).

        Example:
            >>> # table.choose().label
        """
        if len(self.entries) == 1:
            return self.entries[0]
        return self.entries[bisect.bisect_right(self._bounds, self._random.random())]

    def versions(self) -> dict[int, ServedVersion]:
        """Every version the table holds, shadow included, by version number."""
        found = {e.served.version: e.served for e in self.entries}
        if self.shadow is not None:
            found.setdefault(self.shadow.version, self.shadow)
        return found

    def key_of_uris(self) -> tuple[object, ...]:
        """What the table serves (versions with weights, shadow, deployment revision);
        a reload rebuilds the table when the catalog says otherwise."""
        return (
            tuple((e.served.version, e.weight) for e in self.entries),
            self.shadow.version if self.shadow is not None else None,
            self.revision,
        )

    def describe(self) -> str:
        """One line: ``v3 90% · v4 10% · shadow v5``."""
        parts = [f"v{e.served.version} {e.weight:g}%" for e in self.entries]
        if self.shadow is not None:
            parts.append(f"shadow v{self.shadow.version}")
        return " · ".join(parts)
