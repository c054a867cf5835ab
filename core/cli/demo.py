"""`leadhub demo` and `leadhub sandbox`: the whole loop against the built-in vendor sandboxes."""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.table import Table

from core.cli.main import app, console, handles_errors, state
from core.config import load_hub
from core.pipeline.run import RunResult, run_configured
from core.settings import Settings
from core.store.store import Store

DEMO_PORT = 8765
MODEL = Path(__file__).resolve().parents[2] / "scoring" / "examples" / "default.yaml"


def _world(seed: int, people: int) -> Any:
    """The synthetic world as of today (midnight UTC), so its activity is recent."""
    from connectors.sandbox.world import World

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return World.build(seed=seed, people=people, now=today)


@app.command()
@handles_errors
def sandbox(
    port: int = typer.Option(DEMO_PORT, "--port", help="Port on 127.0.0.1."),
    seed: int = typer.Option(42, "--seed", help="Seed of the synthetic world."),
    people: int = typer.Option(300, "--people", help="People in the synthetic world."),
) -> None:
    """Serve every vendor sandbox on one port, each under /<vendor> (Ctrl-C to stop)."""
    from connectors.sandbox.hub import combined_app
    from connectors.sandbox.server import serve

    combined, apps = combined_app(_world(seed, people))
    with serve(combined, port) as base:
        for name in apps:
            console.print(f"  {name:<16} {base}/{name}")
        console.print("serving; Ctrl-C to stop")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


@app.command()
@handles_errors
def demo(
    directory: Path | None = typer.Option(
        None, "--dir", help="Where to write the demo hub (default: a new temporary directory)."
    ),
    top: int = typer.Option(15, "--top", help="How many leads to show."),
    people: int = typer.Option(300, "--people", help="People in the synthetic world."),
    port: int = typer.Option(DEMO_PORT, "--port", help="Port of the sandboxes (0: any free)."),
    keep_serving: bool = typer.Option(False, "--serve", help="Keep sandboxes and dashboard up."),
) -> None:
    """Pull from the vendor sandboxes, score, push back, and show the ranked leads."""
    from connectors.sandbox.hub import combined_app
    from connectors.sandbox.server import free_port, serve

    target = directory or Path(tempfile.mkdtemp(prefix="leadhub-demo-"))
    target.mkdir(parents=True, exist_ok=True)
    combined, apps = combined_app(_world(42, people))
    with serve(combined, port or free_port()) as base:
        hub = _write_hub(target, base, list(apps))
        console.rule(f"[bold]leadhub demo[/bold] — sandboxes at {base}, hub in {target}")
        store = state.store()
        with console.status("pulling, scoring, pushing…"):
            result = run_configured(store, hub, sources=list(hub.sources))
        _print_run(result)
        from core.cli.scores import leads

        leads(top=top, model_name=None, as_of=None, as_json=False)
        _show_landed(store, apps)
        _next_steps(target, store)
        if keep_serving:
            _serve_dashboard(store, hub)


def _write_hub(target: Path, base: str, vendors: list[str]) -> Any:
    from connectors.sandbox.demo import hub_blocks

    sources, destinations = hub_blocks(base, vendors)
    shutil.copyfile(MODEL, target / "models.yaml")
    hub_file = target / "leadhub.yaml"
    text = "# Written by `leadhub demo`: every connector pointed at its sandbox.\n"
    text += f"# `leadhub sandbox --port {base.rsplit(':', 1)[1]}` serves them again.\n"
    body = {"sources": sources, "destinations": destinations, "scoring": "models.yaml"}
    hub_file.write_text(text + yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    db_url = f"sqlite:///{target / 'leadhub.db'}"
    state.settings = Settings(config=hub_file, database_url=db_url)
    state._hub, state._store = load_hub(hub_file), Store(db_url)
    return state._hub


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


def _landed_on(vendor: str, app: Any, email: str) -> str:
    """What the sandbox's record of `email` now holds in the fields leadhub writes."""
    sandbox = app.state.sandbox
    email = email.lower()
    if vendor == "hubspot":
        contact = sandbox.portal.by_email(email)
        props = contact.properties if contact else {}
        return ", ".join(f"{k}={v}" for k, v in sorted(props.items()) if k.startswith("leadhub"))
    if vendor == "salesforce":
        for record in sandbox.org.records.get("Lead", {}).values():
            if (record.get("Email") or "").lower() == email:
                if record.get("IsConverted"):
                    return "converted lead: Salesforce refuses updates, so it is parked"
                return ", ".join(
                    f"{k}={v}"
                    for k, v in record.items()
                    if k.startswith("Lead_") and k.endswith("__c") and v not in (None, "")
                )
        return ""
    if vendor == "mailchimp":
        member = next(
            (m for m in sandbox.audience.members.values() if m.email.lower() == email), None
        )
        if member is None:
            return ""
        score = member.merge_fields.get("LSCORE")
        tags = ",".join(sorted(member.tags))
        return f"LSCORE={score}" + (f", tags={tags}" if tags else "")
    return ""


def _show_landed(store: Store, apps: dict[str, Any], top: int = 5) -> None:
    """The top leads as the sandbox CRM and email tool now hold them: proof the push landed."""
    from core.store import store as queries

    vendors = [v for v in ("hubspot", "salesforce", "mailchimp") if v in apps]
    best = queries.ranked_leads(store, "default", top)
    if not vendors or not best:
        return
    table = Table("email", *vendors, title="what landed on the sandbox records (top leads)")
    for row in best:
        email = row["email"] or ""
        cells = [_landed_on(v, apps[v], email) or "[dim]not in this system[/dim]" for v in vendors]
        table.add_row(email, *cells)
    console.print(table)


def _next_steps(target: Path, store: Store) -> None:
    from core.store import store as queries

    best = queries.ranked_leads(store, "default", 1)
    email = best[0]["email"] if best and best[0]["email"] else "someone@example.com"
    console.print(f"\nnext, try (the demo's hub file and store are in {target}):")
    for cmd in (f"explain {email}", "status", "quarantine", "report", "leads --json --top 3"):
        console.print(f"  [cyan]cd {target} && leadhub {cmd}[/cyan]", soft_wrap=True)
    console.print("  [cyan]leadhub init[/cyan]   # your own hub file, model and CSVs here")


def _serve_dashboard(store: Store, hub: Any) -> None:
    """Keep the sandboxes up and serve the dashboard and API on them, without auth (local only)."""
    import uvicorn

    from core.web.app import create_app

    console.print("dashboard at http://127.0.0.1:8000/ (no auth: a local demo); Ctrl-C to stop")
    uvicorn.run(create_app(store, hub, state.settings, no_auth=True), host="127.0.0.1", port=8000)
