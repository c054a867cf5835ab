"""`leadhub report`, `backtest` and `train` end to end on a CSV hub."""

from __future__ import annotations

import csv
import json
import math
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

import core.cli.analytics  # noqa: F401  (registers the commands on `app`)
from core.cli import app
from core.cli.examples import TEMPLATES
from core.pipeline import score as scorer
from core.pipeline.plan import SCORE
from core.store.store import Store
from scoring.model import load_model_file

runner = CliRunner()
T0 = datetime(2026, 1, 5, tzinfo=UTC)


def run(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def example_hub(tmp_path: Path, db_url: str) -> list[str]:
    """The `leadhub init` example: 40 leads, 12 outcomes (10 decided), synced and scored."""
    run(["init", "--dir", str(tmp_path)])
    base = ["-c", str(tmp_path / "leadhub.yaml"), "--database-url", db_url]
    run([*base, "sync"])
    run([*base, "score"])
    return base


def write_history(folder: Path, n: int = 160, seed: int = 3) -> None:
    """Leads whose title and pricing-page visits decide whether they buy, with dated outcomes."""
    rng = random.Random(seed)
    titles = {"VP Marketing": 2.0, "Director of Sales": 1.5, "Analyst": -1.0, "Student": -3.0}
    leads, acts, outcomes = [], [], []
    for i in range(n):
        title = rng.choice(list(titles))
        visits = rng.randint(0, 4)
        created = T0 + timedelta(days=rng.uniform(0, 150))
        leads.append([f"L{i}", f"lead{i}@acme{i}.com", title, rng.choice(["organic", "referral"])])
        for v in range(visits):
            when = created + timedelta(days=v + 1)
            acts.append(
                [f"A{i}-{v}", f"L{i}", "page_viewed", when.isoformat(), "https://x.test/pricing"]
            )
        won = rng.random() < 1 / (1 + math.exp(-(titles[title] + 1.2 * visits - 2.5)))
        closed = created + timedelta(days=10)
        outcomes.append([f"O{i}", f"L{i}", "won" if won else "lost", closed.isoformat()])
        acts.append(
            [f"M{i}", f"L{i}", "meeting_booked", (closed + timedelta(days=1)).isoformat(), ""]
        )
    for name, header, rows in (
        ("leads.csv", ["external_id", "email", "job_title", "channel"], leads),
        ("activities.csv", ["external_id", "lead", "type", "occurred_at", "url"], acts),
        ("outcomes.csv", ["external_id", "lead", "status", "closed_at"], outcomes),
    ):
        with (folder / name).open("w", newline="") as handle:
            csv.writer(handle).writerows([header, *rows])


@pytest.fixture
def history_hub(tmp_path: Path, db_url: str) -> list[str]:
    write_history(tmp_path)
    shutil.copyfile(TEMPLATES["models.yaml"], tmp_path / "models.yaml")
    hub = {
        "sources": {
            "crm": {
                "connector": "csv",
                "leads": "leads.csv",
                "activities": "activities.csv",
                "outcomes": "outcomes.csv",
            }
        },
        "scoring": "models.yaml",
    }
    (tmp_path / "leadhub.yaml").write_text(yaml.safe_dump(hub))
    base = ["-c", str(tmp_path / "leadhub.yaml"), "--database-url", db_url]
    run([*base, "sync"])
    return base


def test_report_json_and_tables(example_hub: list[str]) -> None:
    data = json.loads(run([*example_hub, "report", "--json"]))
    assert data["model"] == "default" and data["leads"] == 40
    assert [t["tier"] for t in data["tiers"]] == ["hot", "warm", "cold"]
    assert sum(t["leads"] for t in data["tiers"]) == 40
    assert sum(b["decided"] for b in data["conversion"]) == 10
    assert data["qualified_before_close"]["converted"] == 6
    assert {"name", "leads", "average", "rate"} <= set(data["channels"][0])
    text = run([*example_hub, "report"])
    assert "conversion by score" in text and "qualified before they closed" in text


def test_report_without_scores_says_what_to_run(tmp_path: Path, db_url: str) -> None:
    run(["init", "--dir", str(tmp_path)])
    result = runner.invoke(
        app, ["-c", str(tmp_path / "leadhub.yaml"), "--database-url", db_url, "report"]
    )
    assert result.exit_code == 2 and "run `leadhub score`" in result.output


def test_train_refuses_too_few_outcomes_and_stores_nothing(
    example_hub: list[str], db_url: str
) -> None:
    result = runner.invoke(app, [*example_hub, "train"])
    assert result.exit_code == 1
    assert "refused" in result.output and "only 10 decided outcome(s)" in result.output
    store = Store(db_url)
    assert store.count("predictive_model") == 0
    store.close()


def test_train_as_rules_then_backtest_side_by_side(
    history_hub: list[str], tmp_path: Path, db_url: str
) -> None:
    rules = tmp_path / "calibrated.yaml"
    out = json.loads(
        run([*history_hub, "train", "--min-outcomes", "100", "--as-rules", str(rules), "--json"])
    )
    assert out["model"]["version"] == 1 and out["model"]["cv_auc"] > 0.75
    assert out["as_rules"]["backtest_auc"] > 0.75
    assert rules.read_text().startswith("# Generated by `leadhub train --as-rules`")
    assert load_model_file(rules)[0].name == "predictive-rules"
    # The meeting booked a day after each outcome is never seen by the model.
    assert not any("meeting" in f for f in out["model"]["features"])
    again = json.loads(run([*history_hub, "train", "--min-outcomes", "100", "--json"]))
    assert again["model"]["version"] == 2
    # A new predictive model rescores everyone: each lead gets its 0..100 and the factors behind it.
    run([*history_hub, "score"])
    store = Store(db_url)
    with store.engine.connect() as conn:
        query = sa.select(SCORE.c.lead_id, SCORE.c.predictive, SCORE.c.predictive_reason)
        predicted = {r.lead_id: r for r in conn.execute(query) if r.predictive is not None}
    assert len(predicted) == 160
    assert all(0 <= r.predictive <= 100 and r.predictive_reason for r in predicted.values())
    first = scorer.load_artefact(store, version=1)
    assert first is not None and first.version == 1
    store.close()
    against = str(tmp_path / "models.yaml")
    args = ["backtest", "--model", str(rules), "--against", against, "--json"]
    limits = ["--target-precision", "0.7", "--monthly-volume", "10"]
    results = json.loads(run([*history_hub, *args, *limits]))
    assert [r["model"] for r in results] == ["predictive-rules", "default"]
    assert all(r["leads"] == 160 and len(r["deciles"]) == 10 for r in results)
    assert results[0]["auc"] == pytest.approx(out["as_rules"]["backtest_auc"], abs=1e-4)
    assert results[0]["for_volume"]["per_month"] <= 10
    text = run([*history_hub, "backtest", "--model", str(rules), "--horizon-days", "3"])
    assert "AUC" in text and "decile" in text


def test_backtest_bad_model_file_is_a_config_error(history_hub: list[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [{name: x, tiers: [{name: a}, {name: b, min: 3}]}]")
    result = runner.invoke(app, [*history_hub, "backtest", "--model", str(bad)])
    assert result.exit_code == 2 and "bad.yaml" in result.output
    same = runner.invoke(
        app, [*history_hub, "backtest", "--model", str(tmp_path / "models.yaml"),
              "--against", str(tmp_path / "models.yaml")]
    )  # fmt: skip
    assert same.exit_code == 2 and "share a model name" in same.output


def test_train_gboost_cannot_be_turned_into_rules(history_hub: list[str], tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [*history_hub, "train", "--algorithm", "gboost", "--as-rules", str(tmp_path / "r.yaml")],
    )
    assert result.exit_code == 2 and "--as-rules needs --algorithm logreg" in result.output


def test_a_trained_model_becomes_the_predictive_output(history_hub: list[str], db_url: str) -> None:
    from core.store.store import Store, lead_scores

    run([*history_hub, "score"])
    store = Store(db_url)
    lead = store.leads()[0]
    assert lead_scores(store, lead["id"])[0]["predictive"] is None  # nothing trained yet
    run([*history_hub, "train", "--min-outcomes", "100"])
    out = run([*history_hub, "score"])
    assert "full rescore" in out  # a new predictive model rescored everyone
    rows = [lead_scores(store, r["id"])[0] for r in store.leads()]
    assert all(0 <= r["predictive"] <= 100 for r in rows)
    assert all(r["predictive_reason"] for r in rows)
    assert len({r["predictive"] for r in rows}) > 5  # it ranks, it is not a constant
    store.close()
