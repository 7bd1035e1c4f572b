"""Running the app under uvicorn, with the shutdown ``bertzoo serve`` promises.

On SIGTERM or SIGINT uvicorn stops accepting connections, lets in-flight requests finish (up to
``graceful_s``), runs the app's shutdown (the batching workers drain), and the process exits 0;
uvicorn alone would re-raise the signal after its graceful shutdown, ending the process with the
signal's status instead. A second SIGINT still forces the exit.
"""

from __future__ import annotations

import logging
import sys
from types import FrameType
from typing import Any

import uvicorn

from bertzoo.errors import BertzooError
from bertzoo.serve.config import ServeConfig


class _Server(uvicorn.Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()  # the shutdown is the answer to the signal: exit 0, not re-raise it

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.started:  # the real port (port 0 = a free one), for people and for scripts waiting on it
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            print(f"bertzoo: serving on http://{host}:{port}", file=sys.stderr, flush=True)


def run_server(app: Any, config: ServeConfig) -> int:
    """Serve ``app`` until SIGTERM/SIGINT; returns the exit status (0 after a graceful shutdown)."""
    logging.getLogger("bertzoo.serve").setLevel(logging.INFO)
    uv_config = uvicorn.Config(app, host=config.host, port=config.port, log_level="info" if config.access_log else "warning",
                               access_log=config.access_log, timeout_graceful_shutdown=config.graceful_s,
                               lifespan="on", server_header=False)
    server = _Server(uv_config)
    try:
        server.run()
    except SystemExit:  # uvicorn exits 1 when it cannot bind, after logging why
        if server.started:
            raise
        raise BertzooError(f"cannot listen on {config.host}:{config.port} (the line above says why): the port is "
                           "taken or the address is not this machine's; pick another --port or --host") from None
    return 0 if server.started else 1


__all__ = ["run_server"]
