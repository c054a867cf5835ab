"""`leadhub demo`: the whole loop on example data, with nothing configured."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from core import pipeline, scorer
from core import store as store_queries
from core.cli import app, console, handles_errors, state
from core.config import load_hub
from core.examples import write_examples
from core.settings import Settings
from core.store import Store


@app.command()
@handles_errors
def demo(
    directory: Path | None = typer.Option(
        None, "--dir", help="Where to write the demo hub (default: a new temporary directory)."
    ),
    top: int = typer.Option(15, "--top", help="How many leads to show."),
) -> None:
    """Run pull → score on the example data and show the ranked leads."""
    target = directory or Path(tempfile.mkdtemp(prefix="leadhub-demo-"))
    target.mkdir(parents=True, exist_ok=True)
    write_examples(target, force=True)
    db_url = f"sqlite:///{target / 'leadhub.db'}"
    state.settings = Settings(config=target / "leadhub.yaml", database_url=db_url)
    state._hub, state._store = load_hub(target / "leadhub.yaml"), Store(db_url)
    hub, store = state.hub(), state.store()
    console.rule(f"[bold]leadhub demo[/bold] in {target}")
    for name in hub.sources:
        result = pipeline.pull(store, hub, name)
        c = result.counts
        console.print(
            f"pulled [bold]{name}[/bold]: {c.read} records, {c.created} created, "
            f"{c.quarantined} quarantined"
            + (f" — [red]{result.error}[/red]" if result.error else "")
        )
    run = scorer.score(store, hub.models)
    console.print(f"scored {run.leads} leads with model(s) {', '.join(m.name for m in hub.models)}")
    from core.cli_scores import leads

    leads(top=top, model_name=None, as_of=None, as_json=False)
    best = store_queries.ranked_leads(store, hub.models[0].name, 1)
    email = best[0]["email"] if best else "someone@example.com"
    console.print(f"\nnext, try (the demo's hub file and store are in {target}):")
    for cmd in (f"explain {email}", "quarantine", "status", "leads --json --top 3"):
        console.print(f"  [cyan]cd {target} && leadhub {cmd}[/cyan]", soft_wrap=True)
    console.print("  [cyan]leadhub init[/cyan]   # your own hub file, model and CSVs here")
