"""One client interface, two backends: the local catalog, or a control-plane server.

With ``PLINTH_URL`` (and ``PLINTH_TOKEN``) set, :func:`connect` returns a
:class:`RemoteClient` that works through the server's JSON API; otherwise a
:class:`LocalClient` over the local workspace. Both implement :class:`PlinthClient` with the
same results and the same errors (see docs/remote.md).

Example:
    >>> # import plinth.client
    >>> # client = plinth.client.connect()
    >>> # with client.start_run("delay", params={"lr": 0.1}) as run:
    >>> #     run.log_metric("loss", 0.3)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plinth.client.base import Identity, ModelDetail, Page, PlinthClient, RunHandle
from plinth.client.local import LocalClient, LocalRun
from plinth.client.remote import RemoteClient, ServerUnavailableError
from plinth.client.runs import RemoteRun

if TYPE_CHECKING:
    from plinth._core.settings import Settings

__all__ = [
    "Identity",
    "LocalClient",
    "LocalRun",
    "ModelDetail",
    "Page",
    "PlinthClient",
    "RemoteClient",
    "RemoteRun",
    "RunHandle",
    "ServerUnavailableError",
    "connect",
]


def connect(settings: Settings | None = None) -> PlinthClient:
    """The client the settings ask for: remote when ``url`` (``PLINTH_URL``) is set, else
    local over the workspace.

    Example:
        >>> import tempfile
        >>> from plinth._core.settings import Settings
        >>> client = connect(Settings(home=tempfile.mkdtemp()))
        >>> type(client).__name__
        'LocalClient'
        >>> client.close()
    """
    from plinth._core.settings import load_settings
    from plinth.workspace import Workspace

    if settings is None:
        settings = load_settings().settings
    if settings.url:
        return RemoteClient(settings.url, settings.token or None)
    return LocalClient(Workspace(settings=settings), own=True)
