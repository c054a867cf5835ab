"""The X Education benchmark: can leadhub learn who converts, honestly?

Imports `shared/data/leads_x_education/Leads.csv` (9,240 leads; read in place, never copied)
through the CSV source with a column mapping, derives an outcomes file from its `Converted`
column into a temporary directory, trains the predictive model with the columns the sales team
filled in after first contact left out (see that folder's README), and backtests the points model
that `train --as-rules` makes of it. Prints both AUCs.

    python -m bench.xeducation [--leads PATH] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

from core.config import load_hub
from core.errors import ConfigError
from core.pipeline import analytics
from core.pipeline.pull import pull
from core.store.store import Store
from scoring.model import parse_models
from scoring.predictive_rules import as_rules

LEADS = Path(__file__).resolve().parents[2] / "shared/data/leads_x_education/Leads.csv"
COLUMNS = {
    "Prospect ID": "external_id",
    "Lead Source": "channel",
    "Country": "country",
    "City": "city",
    "Specialization": "industry",
    "What is your current occupation": "job_title",
}
# Recorded by the sales team after first contact (the README's list), the label itself, and a
# row number: none of them is known when a new lead arrives.
EXCLUDE = tuple(
    f"custom.{name}"
    for name in (
        "Tags",
        "Lead Quality",
        "Lead Profile",
        "Asymmetrique Activity Index",
        "Asymmetrique Profile Index",
        "Asymmetrique Activity Score",
        "Asymmetrique Profile Score",
        "Last Activity",
        "Last Notable Activity",
        "Converted",
        "Lead Number",
    )
)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class XEducationFigures:
    leads: int
    converted: int
    cv_auc: float
    fold_aucs: list[float]
    fit_auc: float
    rules: int
    rules_backtest_auc: float | None
    import_seconds: float
    train_seconds: float
    backtest_seconds: float


def write_outcomes(leads: Path, target: Path) -> int:
    """An outcomes CSV (converted or lost per Prospect ID) from the `Converted` column."""
    count = 0
    with (
        leads.open(encoding="utf-8", newline="") as source,
        target.open("w", encoding="utf-8", newline="") as out,
    ):
        writer = csv.writer(out)
        writer.writerow(["external_id", "lead", "status"])
        for row in csv.DictReader(source):
            status = "converted" if row["Converted"].strip() == "1" else "lost"
            writer.writerow([f"outcome-{row['Prospect ID']}", row["Prospect ID"], status])
            count += 1
    return count


def run(leads: Path = LEADS, workdir: Path | None = None) -> XEducationFigures:
    """Import, train (5-fold CV) and backtest the as-rules model; returns the figures."""
    if not leads.exists():
        raise ConfigError(f"{leads} not found (the X Education file lives in shared/data)")
    with tempfile.TemporaryDirectory() as tmp:
        base = workdir or Path(tmp)
        write_outcomes(leads, base / "outcomes.csv")
        store = Store(f"sqlite:///{base / 'xeducation.db'}")
        try:
            return _measure(store, leads, base)
        finally:
            store.close()


def write_hub(leads: Path, base: Path) -> Path:
    """A hub file whose CSV source maps the X Education columns onto lead fields."""
    source = {
        "connector": "csv",
        "leads": str(leads),
        "outcomes": "outcomes.csv",
        "columns": COLUMNS,
        "skip_values": ["Select"],
        "page_size": 5000,
    }
    path = base / "leadhub.yaml"
    path.write_text(yaml.safe_dump({"sources": {"xeducation": source}}, sort_keys=False))
    return path


def _measure(store: Store, leads: Path, base: Path) -> XEducationFigures:
    started = time.perf_counter()
    result = pull(store, load_hub(write_hub(leads, base)), "xeducation")
    if not result.ok:
        raise ConfigError(f"import failed: {result.error}")
    imported = time.perf_counter()
    inputs = analytics.training_inputs(store)
    artefact = analytics.train_model(store, inputs, exclude=EXCLUDE, now=NOW)
    trained = time.perf_counter()
    rules = parse_models(as_rules(artefact), source="as-rules")
    backtest = analytics.run_backtests(store, rules)[0]
    done = time.perf_counter()
    return XEducationFigures(
        leads=artefact.outcomes,
        converted=artefact.converted,
        cv_auc=round(artefact.cv_auc, 4),
        fold_aucs=[round(a, 4) for a in artefact.fold_aucs],
        fit_auc=round(artefact.fit_auc, 4),
        rules=len(rules[0].fit.rules) + len(rules[0].engagement.rules),
        rules_backtest_auc=None if backtest.auc is None else round(backtest.auc, 4),
        import_seconds=round(imported - started, 1),
        train_seconds=round(trained - imported, 1),
        backtest_seconds=round(done - trained, 1),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=Path, default=LEADS, help="path to Leads.csv")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = run(args.leads)
    if args.json:
        print(json.dumps(asdict(figures), indent=2))
        return
    print(
        f"X Education: {figures.leads} leads, {figures.converted} converted\n"
        f"  predictive (logistic regression) 5-fold CV AUC: {figures.cv_auc:.3f} "
        f"(folds {', '.join(f'{a:.3f}' for a in figures.fold_aucs)})\n"
        f"  as-rules points model ({figures.rules} rules) backtest AUC: "
        f"{figures.rules_backtest_auc:.3f} (regression on the same leads: {figures.fit_auc:.3f})\n"
        f"  import {figures.import_seconds}s, train {figures.train_seconds}s, "
        f"backtest {figures.backtest_seconds}s"
    )


if __name__ == "__main__":
    main()
