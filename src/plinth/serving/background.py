"""``plinth serve`` in a child process: for the quickstart, tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from plinth.serving.loadgen import wait_ready

if TYPE_CHECKING:
    from plinth.workspace import Workspace


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now.

    Example:
        >>> 0 < free_port() < 65536
        True
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BackgroundServer:
    """Start ``plinth serve URIS`` on a free loopback port and wait until it is ready.

    ``stop()`` sends SIGTERM: the server stops accepting, answers what is in flight, flushes
    the prediction log and exits.

    Example:
        >>> # server = BackgroundServer(ws, ["delay@champion"]); server.base; server.stop()
    """

    def __init__(
        self,
        ws: Workspace,
        uris: Sequence[str],
        *args: str,
        timeout_s: float = 120.0,
        quiet: bool = True,
    ) -> None:
        from plinth.training.launcher import workspace_env

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        settings = getattr(ws.settings, "settings", ws.settings)
        command = [sys.executable, "-m", "plinth.cli.main", "serve", *uris]
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port), *args],
            env={**os.environ, **workspace_env(settings)},
            stdout=subprocess.DEVNULL if quiet else subprocess.PIPE,
            stderr=subprocess.DEVNULL if quiet else subprocess.STDOUT,
            text=True,
        )
        try:
            wait_ready(self.base, timeout_s=timeout_s)
        except BaseException:
            self.process.kill()
            self.process.wait()
            raise

    def stop(self, timeout_s: float = 120.0) -> int:
        """Shut the server down gracefully; return its exit status (0 when it was clean).

        uvicorn re-raises SIGTERM once it has shut down, so a clean exit reads as -SIGTERM;
        that is reported as 0.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        return 0 if code == -signal.SIGTERM else code
