"""Serve a sandbox ASGI app over real HTTP on 127.0.0.1, in a background thread.

    with serve(app) as base_url:
        httpx.get(f"{base_url}/crm/v3/objects/contacts")

Used by `leadhub sandbox`, `leadhub demo` and the end-to-end tests.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the main thread keeps its own handlers
        pass


@contextmanager
def serve(app: Any, port: int | None = None, *, startup_timeout: float = 10.0) -> Iterator[str]:
    """Run `app` until the block exits; yields its base URL (`http://127.0.0.1:PORT`)."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = _Server(config)
    thread = threading.Thread(target=server.run, name=f"sandbox:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"sandbox server on port {port} did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
