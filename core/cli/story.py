"""What `leadhub demo --days N` prints: the replay's progress bar, then what to look at."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from core.cli.common import console
from core.cli.replay import DayResult, ReplayResult, replay
from core.pipeline.analytics import report, run_backtests
from core.pipeline.highlights import Highlights, Moment, highlights
from core.store.store import Store

if TYPE_CHECKING:
    from connectors.base.sandboxes import Sandboxes
    from core.config import HubConfig

MIN_TO_TRAIN = 500  # `leadhub train`'s default --min-outcomes


def run_replay(
    store: Store, hub: HubConfig, sandboxes: Sandboxes, *, days: int, end: datetime
) -> ReplayResult:
    """Replay `days` days up to `end` with a progress bar; print what the days did."""
    columns = (
        TextColumn("[bold]replaying[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("days · {task.fields[rate]} days/s"),
        TimeElapsedColumn(),
        TextColumn("elapsed ·"),
        TimeRemainingColumn(),
        TextColumn("left"),
    )
    with Progress(*columns, console=console, transient=not console.is_terminal) as bar:
        task = bar.add_task("", total=days, rate="-")

        def advance(day: DayResult) -> None:
            bar.advance(task)
            speed = next(t.speed for t in bar.tasks if t.id == task)
            bar.update(task, description=f"{day.day:%Y-%m-%d}",
                       rate=f"{speed:.1f}" if speed else "-")  # fmt: skip

        result = replay(store, hub, sandboxes.advance, days=days, end=end, progress=advance)
    first, last = result.start, result.end
    console.print(
        f"replayed {days} days ({first:%Y-%m-%d} → {last:%Y-%m-%d}): {result.records} records "
        f"pulled, {result.events} qualified/released crossings, {result.sent} values written "
        f"back, {result.tasks} follow-up tasks created"
    )
    for source, records in result.pulled.items():
        console.print(
            f"pulled [bold]{source}[/bold]: {records} records in {days} daily incremental pulls"
        )
    for error in result.errors[:5]:
        console.print(Text(error, style="red"))
    if len(result.errors) > 5:
        console.print(
            f"… and {len(result.errors) - 5} more failed pulls or pushes (`leadhub status`)"
        )
    return result


def show_highlights(store: Store, hub: HubConfig, sandboxes: Sandboxes) -> None:
    """The closing table: tiers, a qualified crossing and its task, a decay, conversion by
    bracket and the backtest's lift."""
    model = hub.models[0]
    found = highlights(store, model.name)
    _tiers(found, [t.name for t in model.tiers])
    table = Table("what to look at", "lead", "what happened", "see", title="the story so far")
    crossed = _with_task(found.crossings[:50], sandboxes) or found.crossed
    if crossed is not None:
        table.add_row("a qualified crossing", *_crossing(crossed, sandboxes))
    if found.decayed is not None:
        table.add_row("a lead that decayed", *_decay(found.decayed))
    if table.rows:
        console.print(table)
    _conversion(store, hub)


def _tiers(found: Highlights, order: list[str]) -> None:
    total = found.leads or 1
    shares = ", ".join(
        f"{name} {found.tiers.get(name, 0)} ({found.tiers.get(name, 0) / total:.0%})"
        for name in order
    )
    console.print(f"tiers now: {shares}")


def _tasks(moment: Moment, sandboxes: Sandboxes) -> list[str]:
    return [
        f"{vendor} task “{subject}”"
        for vendor in ("hubspot", "salesforce")
        if vendor in sandboxes.apps and moment.email
        for subject in sandboxes.tasks(vendor, moment.email)
    ]


def _with_task(crossings: list[Moment], sandboxes: Sandboxes) -> Moment | None:
    """The first crossing whose lead has a follow-up task in a sandbox CRM."""
    return next((m for m in crossings if _tasks(m, sandboxes)), None)


def _crossing(moment: Moment, sandboxes: Sandboxes) -> tuple[str, str, str]:
    email = moment.email or f"lead {moment.lead_id}"
    tasks = _tasks(moment, sandboxes)
    crossed = f"crossed into qualified on {moment.at:%Y-%m-%d} ({_move(moment)})"
    what = f"{crossed}; " + ("; ".join(tasks) or "no CRM record to put a task on")
    return email, what, f"leadhub history {email} · /leads/{moment.lead_id}"


def _decay(moment: Moment) -> tuple[str, str, str]:
    email = moment.email or f"lead {moment.lead_id}"
    verb = "released from qualified" if moment.event == "released" else "decayed"
    what = f"{verb} on {moment.at:%Y-%m-%d} as it went quiet ({_move(moment)})"
    return email, what, f"leadhub history {email} · /leads/{moment.lead_id}"


def _move(moment: Moment) -> str:
    return f"{moment.before:.0f} → {moment.after:.0f}"


def _conversion(store: Store, hub: HubConfig) -> None:
    model = hub.models[0]
    found = report(store, model)
    table = Table("score", "decided", "converted", "rate", "", title="conversion by score bracket "
                  "(decided leads, scored just before they closed) · the dashboard's /models/"
                  f"{model.name}")  # fmt: skip
    for bracket in found.conversion:
        if not bracket.decided:
            continue
        rate = bracket.rate or 0.0
        table.add_row(f"{bracket.low:.0f}-{bracket.high:.0f}", str(bracket.decided),
                      str(bracket.converted), f"{rate:.0%}", "█" * round(rate * 30))  # fmt: skip
    console.print(table)
    (backtest,) = run_backtests(store, [model])
    top = backtest.deciles[0] if backtest.deciles else None
    if top is not None and top.lift is not None:
        console.print(
            f"backtest: the top tenth of scores converts at {top.rate:.0%}, {top.lift:.1f} times "
            f"the {backtest.base_rate or 0:.0%} of all {backtest.leads} decided leads (AUC "
            f"{backtest.auc or 0:.2f})"
        )
    if backtest.leads >= MIN_TO_TRAIN:
        console.print(f"{backtest.leads} decided outcomes: enough for `leadhub train`")
