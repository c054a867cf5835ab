"""`leadhub serve`: the API, the dashboard and the Facebook webhook over HTTP (uvicorn)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
import uvicorn
from dramatiq.brokers.stub import StubBroker

from core.cli.common import console, handles_errors, state
from core.jobs import actors
from core.jobs.broker import configure_once
from core.web.app import create_app

if TYPE_CHECKING:
    import dramatiq


@handles_errors
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    no_auth: bool = typer.Option(
        False,
        "--no-auth",
        help="Serve the API and dashboard without credentials (only on a trusted network).",
    ),
    threads: int = typer.Option(
        2, "--threads", help="Embedded mode: worker threads for the jobs webhooks enqueue."
    ),
) -> None:
    """Serve /api, the dashboard at /, /metrics, /healthz and /webhooks/facebook.

    The API and dashboard need LEADHUB_API_TOKEN (Bearer) or LEADHUB_API_USER and
    LEADHUB_API_PASSWORD (basic auth); without either, pass --no-auth explicitly.
    """

    web = create_app(state.store(), state.hub(), state.settings, no_auth=no_auth)
    worker = _start_workers(threads) if web.state.webhooks else None
    where = f"http://{host}:{port}"
    console.print(f"leadhub serving the dashboard at [bold]{where}/[/bold], the API at {where}/api")
    for path in web.state.webhooks:
        console.print(f"webhook: {where}{path}")
    if no_auth:
        console.print("[yellow]warning:[/yellow] --no-auth: anyone who can reach it can read it")
    try:
        uvicorn.run(web, host=host, port=port, log_level=state.settings.log_level.lower())
    finally:
        if worker is not None:
            worker.stop(timeout=10_000)


def _start_workers(threads: int) -> dramatiq.Worker | None:
    """Embedded mode has no separate worker: run threads here for the jobs webhooks enqueue."""

    if not isinstance(configure_once().broker, StubBroker) or threads < 1:
        return None
    return actors.start_worker(threads)
