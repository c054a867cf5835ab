"""CLI commands that judge the scores against outcomes: report, backtest, train."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.table import Table

from core.cli.common import (
    JSON_HELP,
    console,
    err_console,
    handles_errors,
    hub_model,
    print_json,
    read_model_file,
    state,
)
from core.errors import ConfigError
from core.pipeline import analytics
from scoring.model import parse_models
from scoring.predictive import ALGORITHMS, Artefact, InsufficientData
from scoring.predictive_rules import as_rules
from scoring.report import Backtest, Bracket, Report, Selection

RATES = ("rate", "share", "base_rate")


def plain(value: Any) -> Any:
    """Dataclasses (with their rate properties), lists and datetimes as JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        for name in RATES:
            if isinstance(getattr(type(value), name, None), property):
                out[name] = plain(getattr(value, name))
        return out
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 4)
    return value


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _range(b: Bracket) -> str:
    return f"{b.low:g}-{b.high:g}"


# -- report --------------------------------------------------------------------------------------


@handles_errors
def report(
    model_name: str | None = typer.Option(None, "--model", help="Model (default: the first)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Scores against outcomes: tiers, brackets, channels, sources, qualified leads per month."""

    model = hub_model(model_name)
    result = analytics.report(state.store(), model)
    if as_json:
        print_json({"model": model.name, **plain(result)})
        return
    _print_report(model.name, result)


def _print_report(name: str, r: Report) -> None:
    tiers = Table("tier", "leads", "share", "avg score", title=f"{name}: {r.leads} scored leads")
    for t in r.tiers:
        tiers.add_row(t.tier, str(t.leads), _pct(t.share), _num(t.average, 1))
    console.print(tiers)
    brackets = Table(
        "score", "leads now", "decided", "converted", "conversion", title="conversion by score "
        "(decided leads scored just before their outcome)",
    )  # fmt: skip
    for now, then in zip(r.brackets, r.conversion, strict=True):
        brackets.add_row(
            _range(now), str(now.leads), str(then.decided), str(then.converted), _pct(then.rate)
        )
    console.print(brackets)
    for title, groups in (("channel", r.channels), ("source", r.sources)):
        table = Table(title, "leads", "avg score", "decided", "converted", "conversion")
        for g in groups:
            table.add_row(
                g.name, str(g.leads), f"{g.average:.1f}", str(g.decided), str(g.converted),
                _pct(g.rate),
            )  # fmt: skip
        console.print(table)
    q = r.qualified_before_close
    console.print(
        f"qualified before they closed: {q.qualified} of {q.converted} converted lead(s) "
        f"({_pct(q.share)})"
    )
    months = Table("month", "newly qualified", title="qualified leads per month")
    for month, count in r.qualified_per_month:
        months.add_row(month, str(count))
    console.print(months if r.qualified_per_month else "no lead has qualified yet")


# -- backtest ------------------------------------------------------------------------------------


@handles_errors
def backtest(
    model_file: Path = typer.Option(..., "--model", help="Model file to test on history."),
    against: Path | None = typer.Option(None, "--against", help="A model file to compare with."),
    horizon_days: float = typer.Option(
        0, "--horizon-days", min=0, help="Score each lead this many days before its outcome."
    ),
    target_precision: float | None = typer.Option(
        None, "--target-precision", min=0, max=1, help="Suggest a threshold converting this well."
    ),
    monthly_volume: float | None = typer.Option(
        None, "--monthly-volume", min=0, help="Suggest a threshold giving sales this many a month."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Score every decided lead as of just before its outcome; AUC, lift, suggested thresholds."""
    models = read_model_file(model_file) + (read_model_file(against) if against else [])
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ConfigError(f"--model and --against share a model name ({', '.join(names)})")
    results = analytics.run_backtests(
        state.store(),
        models,
        horizon_days=horizon_days,
        target_precision=target_precision,
        monthly_volume=monthly_volume,
    )
    if as_json:
        print_json([plain(b) for b in results])
        return
    print_backtests(results)


def _selection(s: Selection | None) -> str:
    if s is None:
        return "none reaches it"
    at = "" if s.threshold is None else f"≥ {s.threshold:g}: "
    return (
        f"{at}{s.leads} leads ({s.per_month:.1f}/month), precision {_pct(s.precision)}, "
        f"recall {_pct(s.recall)}"
    )


def print_backtests(results: list[Backtest]) -> None:
    """The summary side by side, then lift by decile and conversion by bracket per model."""
    summary = Table("", *(b.model for b in results), title="backtest (decided leads)")
    rows: list[tuple[str, Any]] = [
        ("decided leads", lambda b: str(b.leads)),
        ("converted", lambda b: f"{b.converted} ({_pct(b.base_rate)})"),
        ("months", lambda b: str(b.months)),
        ("AUC", lambda b: _num(b.auc)),
        ("qualified", lambda b: _selection(b.qualified)),
    ]
    if any(b.for_precision for b in results) or any(b.for_volume for b in results):
        rows.append(("for target precision", lambda b: _selection(b.for_precision)))
        rows.append(("for monthly volume", lambda b: _selection(b.for_volume)))
    for label, cell in rows:
        summary.add_row(label, *(cell(b) for b in results))
    console.print(summary)
    for b in results:
        deciles = Table(
            "decile", "scores", "leads", "converted", "rate", "lift", "captured", title=b.model
        )
        for d in b.deciles:
            deciles.add_row(
                str(d.decile), f"{d.low:g}-{d.high:g}", str(d.leads), str(d.converted),
                _pct(d.rate), _num(d.lift, 2), _pct(d.captured),
            )  # fmt: skip
        console.print(deciles)


# -- train ---------------------------------------------------------------------------------------


@handles_errors
def train(
    algorithm: str = typer.Option(
        "logreg", "--algorithm", help="logreg (logistic regression) or gboost (gradient boosting)."
    ),
    min_outcomes: int = typer.Option(
        500, "--min-outcomes", min=1, help="Refuse with fewer decided outcomes."
    ),
    exclude: list[str] = typer.Option(
        [], "--exclude", help="A field to leave out (e.g. custom.Tags); repeatable."
    ),
    rules_file: Path | None = typer.Option(
        None, "--as-rules", help="Also write the model as a points model file here."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Train the predictive model on decided outcomes; report its 5-fold AUC and calibration."""

    if algorithm not in ALGORITHMS:
        raise typer.BadParameter(f"--algorithm: use one of {', '.join(ALGORITHMS)}")
    if rules_file is not None and algorithm != "logreg":
        raise typer.BadParameter("--as-rules needs --algorithm logreg")
    store = state.store()
    with console.status("loading decided leads…"):
        inputs = analytics.training_inputs(store)
    try:
        with console.status(f"training ({algorithm}, 5-fold cross-validation)…"):
            artefact = analytics.train_model(
                store,
                inputs,
                algorithm=algorithm,  # narrowed to Algorithm by the `in ALGORITHMS` check above
                min_outcomes=min_outcomes,
                exclude=exclude,
            )
    except InsufficientData as exc:
        err_console.print(f"[red]refused:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    out: dict[str, Any] = {"model": artefact.metadata()}
    if rules_file is not None:
        out["as_rules"] = _write_rules(store, artefact, rules_file)
    if as_json:
        print_json(out)
        return
    _print_training(artefact, out.get("as_rules"))


def _write_rules(store: Any, artefact: Artefact, path: Path) -> dict[str, Any]:
    """Write the points model file and backtest it on the same decided leads."""

    data = as_rules(artefact)
    models = parse_models(data, source=str(path))
    header = (
        f"# Generated by `leadhub train --as-rules` from predictive model v{artefact.version}.\n"
        "# Edit freely: it is an ordinary model file. Backtest changes with `leadhub backtest`.\n"
    )
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100))
    result = analytics.run_backtests(store, models)[0]
    return {
        "file": str(path),
        "model": models[0].name,
        "rules": len(models[0].fit.rules) + len(models[0].engagement.rules),
        "backtest_auc": None if result.auc is None else round(result.auc, 4),
        # Both on the same decided leads: what turning the regression into points costs.
        "model_auc": round(artefact.fit_auc, 4),
        "auc_cost": None if result.auc is None else round(artefact.fit_auc - result.auc, 4),
    }


def _print_training(artefact: Artefact, rules: dict[str, Any] | None) -> None:
    console.print(
        f"predictive model v{artefact.version} ({artefact.algorithm}) on {artefact.outcomes} "
        f"decided leads ({artefact.converted} converted), {len(artefact.features)} features"
    )
    folds = ", ".join(f"{a:.3f}" for a in artefact.fold_aucs)
    console.print(f"5-fold AUC [bold]{artefact.cv_auc:.3f}[/bold] (folds: {folds})")
    table = Table("predicted", "leads", "mean predicted", "observed", title="calibration")
    for b in artefact.calibration:
        table.add_row(
            f"{b.low:.0%}-{b.high:.0%}", str(b.leads), _pct(b.predicted), _pct(b.observed)
        )
    console.print(table)
    if rules:
        console.print(
            f"wrote {rules['file']} ({rules['rules']} rules): backtest AUC "
            f"[bold]{_num(rules['backtest_auc'])}[/bold] "
            f"against {_num(rules['model_auc'])} for the regression on the same leads: "
            f"points and bins cost {_num(rules['auc_cost'])}"
        )
