"""`leadhub demo` and `leadhub sandbox`: the whole loop against the built-in vendor sandboxes."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
import uvicorn
import yaml
from rich.table import Table

from connectors.base.sandboxes import serve_sandboxes
from core.cli import story
from core.cli.common import console, handles_errors, heading, state
from core.cli.leads import leads
from core.config import load_hub
from core.pipeline.run import RunResult, run_configured
from core.settings import Settings
from core.store import store as queries
from core.store.store import Store
from core.web.app import create_app

if TYPE_CHECKING:
    from connectors.base.sandboxes import Sandboxes
    from core.config import HubConfig
    from core.store.store import Store

DEMO_PORT = 8765
DASHBOARD_PORT = 8000
MODEL = Path(__file__).resolve().parents[2] / "scoring" / "examples" / "default.yaml"


def _today() -> datetime:
    """Midnight UTC today: the synthetic world is built up to it, so its activity is recent."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@handles_errors
def sandbox(
    port: int = typer.Option(DEMO_PORT, "--port", help="Port on 127.0.0.1."),
    seed: int = typer.Option(42, "--seed", help="Seed of the synthetic world."),
    people: int = typer.Option(300, "--people", help="People in the synthetic world."),
) -> None:
    """Serve every vendor sandbox on one port, each under /<vendor> (Ctrl-C to stop)."""

    with serve_sandboxes(seed=seed, people=people, now=_today(), port=port) as sandboxes:
        for name in sandboxes.vendors:
            console.print(f"  {name:<16} {sandboxes.url}/{name}")
        console.print("serving; Ctrl-C to stop")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


@handles_errors
def demo(
    directory: Path | None = typer.Option(
        None, "--dir", help="Where to write the demo hub (default: a new temporary directory)."
    ),
    top: int = typer.Option(15, "--top", help="How many leads to show."),
    people: int = typer.Option(1200, "--people", help="People in the synthetic world."),
    days: int = typer.Option(
        90,
        "--days",
        min=0,
        help="Days of the world to replay, one pull, score, push and decay pass a day "
        "(0: one pass over a world that is all there at once).",
    ),
    seed: int = typer.Option(
        42, "--seed", help="Seed of the synthetic world: same seed, same demo."
    ),
    port: int = typer.Option(
        DASHBOARD_PORT, "--port", help="Port of the dashboard that --serve keeps up."
    ),
    sandbox_port: int = typer.Option(
        DEMO_PORT, "--sandbox-port", help="Port of the vendor sandboxes (0: any free)."
    ),
    keep_serving: bool = typer.Option(False, "--serve", help="Keep sandboxes and dashboard up."),
) -> None:
    """Replay days of a synthetic world through the vendor sandboxes, then show what happened.

    Each day the sandboxes show that day's leads, activity and outcomes; leadhub pulls them,
    scores everyone as of the day (inactivity decays), and pushes scores and follow-up tasks back.
    """

    target = directory or Path(tempfile.mkdtemp(prefix="leadhub-demo-"))
    target.mkdir(parents=True, exist_ok=True)
    today = _today()
    with serve_sandboxes(
        seed=seed, people=people, now=today, port=sandbox_port, days=days or None
    ) as sandboxes:
        hub = _write_hub(target, sandboxes, follow_ups=days > 0)
        heading(f"[bold]leadhub demo[/bold] — sandboxes at {sandboxes.url}, hub in {target}")
        store = state.store()
        if days:
            story.run_replay(store, hub, sandboxes, days=days, end=today)
        else:
            with console.status("pulling, scoring, pushing…"):
                result = run_configured(store, hub, sources=list(hub.sources))
            _print_run(result)

        leads(top=top, model_name=None, as_of=None, as_json=False)
        _show_landed(store, sandboxes)
        if days:
            story.show_highlights(store, hub, sandboxes)
        _next_steps(target, store, replayed=days > 0)
        if keep_serving:
            _serve_dashboard(store, hub, port)


def _write_hub(target: Path, sandboxes: Sandboxes, *, follow_ups: bool = False) -> HubConfig:

    sources, destinations = sandboxes.hub_blocks(follow_ups=follow_ups)
    for block in sources.values():
        if block.get("connector") == "facebook_leads":
            # With a verify token the dashboard mounts the Facebook webhook like a real hub does.
            block.setdefault("verify_token", "sandbox-verify-token")
    (target / "models.yaml").write_text(_demo_model(sources), encoding="utf-8")
    hub_file = target / "leadhub.yaml"
    text = "# Written by `leadhub demo`: every connector pointed at its sandbox.\n"
    port = sandboxes.url.rsplit(":", 1)[1]
    text += f"# `{_leadhub()} sandbox --port {port}` serves them again.\n"
    body = {"sources": sources, "destinations": destinations, "scoring": "models.yaml"}
    hub_file.write_text(text + yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    db_url = f"sqlite:///{target / 'leadhub.db'}"
    state.settings = Settings(config=hub_file, database_url=db_url)
    hub = load_hub(hub_file)
    state._hub, state._store = hub, Store(db_url)
    return hub


def _demo_model(sources: dict[str, Any]) -> str:
    """The example model, its quote rule also matching the sandbox forms the sources read (a form
    submission's `form` is the vendor's form id)."""
    text = MODEL.read_text(encoding="utf-8")
    forms = [str(f) for block in sources.values() for f in block.get("form_ids") or ()]
    if forms:
        names = ", ".join(["request-quote", *(json.dumps(f) for f in forms)])
        text = text.replace("where: {form: request-quote}", f"where: {{form: [{names}]}}")
    return text


def _print_run(result: RunResult) -> None:
    for pulled in result.pulls:
        c = pulled.counts
        error = f" — [red]{pulled.error}[/red]" if pulled.error else ""
        console.print(
            f"pulled [bold]{pulled.source}[/bold]: {c.read} records, {c.created} new, "
            f"{c.quarantined} quarantined{error}"
        )
    if result.scored is not None:
        run = result.scored
        console.print(f"scored {run.leads} leads ({run.events} qualified/released events)")
    table = Table("destination", "sent", "created", "parked", "API calls", "error",
                  title="written back")  # fmt: skip
    for pushed in result.pushes:
        table.add_row(pushed.destination, str(pushed.accepted), str(pushed.created),
                      str(pushed.parked), str(pushed.calls), pushed.error or "")  # fmt: skip
    if result.pushes:
        console.print(table)


def _show_landed(store: Store, sandboxes: Sandboxes, top: int = 5) -> None:
    """The top leads as the sandbox CRM and email tool now hold them: proof the push landed."""

    vendors = [v for v in ("hubspot", "salesforce", "mailchimp") if v in sandboxes.apps]
    best = queries.ranked_leads(store, "default", top)
    if not vendors or not best:
        return
    table = Table("email", *vendors, title="what landed on the sandbox records (top leads)")
    for row in best:
        email = row["email"] or ""
        cells = [sandboxes.landed(v, email) or "[dim]not in this system[/dim]" for v in vendors]
        table.add_row(email, *cells)
    console.print(table)


def _next_steps(target: Path, store: Store, *, replayed: bool = False) -> None:

    best = queries.ranked_leads(store, "default", 1)
    email = best[0]["email"] if best and best[0]["email"] else "someone@example.com"
    leadhub = _leadhub()
    console.print(f"\nnext, try (the demo's hub file and store are in {target}):")
    where = shlex.quote(str(target))
    commands = [f"explain {email}", "status", "quarantine", "report", "leads --json --top 3"]
    if replayed:  # a replay decides enough outcomes to backtest the model on
        commands[2] = "backtest --model models.yaml"
    for cmd in commands:
        console.print(f"  cd {where} && {leadhub} {cmd}", soft_wrap=True, style="cyan",
                      markup=False, highlight=False)  # fmt: skip
    console.print(f"  {leadhub} init   # your own hub file, model and CSVs here", soft_wrap=True,
                  style="cyan", markup=False, highlight=False)  # fmt: skip


def _leadhub() -> str:
    """How to run leadhub from any directory: `leadhub` when that is on PATH and is this one,
    else the absolute path of the running executable (the README's setup puts it in .venv/bin,
    which is not on PATH)."""
    running = Path(sys.argv[0])
    if not running.name.startswith("leadhub") or not running.is_file():
        running = Path(sys.executable).parent / "leadhub"  # e.g. `python -m`: the venv's script
        if not running.is_file():
            return "leadhub"
    on_path = shutil.which("leadhub")
    if on_path and Path(on_path).resolve() == running.resolve():
        return "leadhub"
    return shlex.quote(str(running.absolute()))


def _serve_dashboard(store: Store, hub: HubConfig, port: int) -> None:
    """Keep the sandboxes up and serve the dashboard and API on `port`, without auth (local)."""
    console.print(f"dashboard at http://127.0.0.1:{port}/ (no auth: a local demo); Ctrl-C to stop")
    uvicorn.run(create_app(store, hub, state.settings, no_auth=True), host="127.0.0.1", port=port)
