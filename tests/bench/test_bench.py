"""`leadhub bench` at a tiny size: every section runs end to end and reports sane figures.

No timing is asserted (the machine decides those); counts, ratios and the JSON's shape are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import bench.pull
import bench.run
import bench.webhook
from bench import memory, push, sandboxes
from connectors.sandbox.hub import VENDORS
from core.cli import app

TINY = {"leads": 300, "per_lead": 2, "pull_records": 400, "push_leads": 40, "webhooks": 4,
        "memory_records": 3000, "dashboard_leads": 300}  # fmt: skip


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One `leadhub bench --json` run of every section at the tiny size."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(bench.run.SIZES, "small", TINY)
        patch.setattr(bench.pull, "CALIBRATION_PEOPLE", 150)
        patch.setattr(bench.webhook, "PEOPLE", 120)
        patch.delenv("LEADHUB_BENCH_REDIS_URL", raising=False)  # the soak: not at this size
        result = CliRunner().invoke(app, ["bench", "--size", "small", "--json", str(out)])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    data["output"] = result.output
    return data


def measurable(vendor: str) -> bool:
    return sandboxes.missing(vendor) is None


def test_json_has_every_section_and_the_machine(figures: dict[str, Any]) -> None:
    assert figures["size"] == "small"
    sections = {"rescore", "pull", "push", "webhook", "memory", "dashboard", "soak"}
    assert set(figures["sections"]) == sections
    assert set(figures["seconds"]) == set(figures["sections"])
    assert figures["machine"]["cpus"] >= 1 and figures["machine"]["python"].count(".") == 2
    for title in sections:
        assert title in figures["output"]  # each section printed its table


def test_dashboard_times_every_page_and_each_answers(figures: dict[str, Any]) -> None:
    load, *pages = figures["sections"]["dashboard"]
    assert load["backend"] == "sqlite" and load["leads"] == TINY["dashboard_leads"]
    assert load["activities"] > 0 and "load" in load["page"]
    labels = [p["page"] for p in pages]
    for wanted in ("home /", "report /api/report", "/api/leads deep offset", "/api/leads/{id}"):
        assert wanted in labels
    assert any("source=" in p for p in labels) and any("channel=" in p for p in labels)
    assert all(p["status"] == 200 and p["median_ms"] > 0 for p in pages), pages


def test_rescore_scores_every_lead_once_and_reports_its_own_peak(figures: dict[str, Any]) -> None:
    (row,) = figures["sections"]["rescore"]
    assert row["backend"] == "sqlite" and row["leads"] == TINY["leads"]
    assert row["activities"] > 0 and row["ratio_to_scan"] > 0
    # the model change moves scores; the scores after it are checked against the engine's
    assert row["model_change_changed"] > 0 and row["model_change_ratio"] > 0
    assert row["next_day_rescore_seconds"] > 0 and row["next_day_changed"] >= 0
    # each pass's ratio is its seconds over the scan's (both as rounded in the report)
    for seconds, ratio in (
        ("full_rescore_seconds", "ratio_to_scan"),
        ("unchanged_rescore_seconds", "unchanged_ratio"),
        ("next_day_rescore_seconds", "next_day_ratio"),
    ):
        low = (row[seconds] - 0.005) / (row["scan_seconds"] + 0.0005)
        high = (row[seconds] + 0.005) / max(row["scan_seconds"] - 0.0005, 1e-9)
        assert low - 0.005 <= row[ratio] <= high + 0.005, (seconds, row)
    assert row["checked_leads"] == row["leads"] and row["mismatches"] == 0
    assert 20 < row["peak_rss_mb"] < 2000  # a process of its own: not the test runner's peak


def test_pull_measures_each_installed_sandbox_and_names_the_missing(
    figures: dict[str, Any],
) -> None:
    rows = {r["vendor"]: r for r in figures["sections"]["pull"]}
    assert set(rows) == set(VENDORS)
    assert measurable("mailchimp") and measurable("facebook_leads")
    for vendor, row in rows.items():
        if not measurable(vendor):
            assert row["status"] == sandboxes.missing(vendor) and row["records"] is None
            continue
        assert row["status"] == "ok", row
        assert row["records"] >= TINY["pull_records"] / 2
        assert row["requests"] >= 2 and row["records_per_s"] > 0
        assert row["requests_per_1000"] == round(1000 * row["requests"] / row["records"], 2)
        assert 0 < row["sandbox_share"] < 1
    # Mailchimp lists 1,000 members a page: far fewer requests than records
    assert rows["mailchimp"]["requests_per_1000"] < 50


def test_push_sends_changed_leads_in_batches_and_nothing_unchanged(
    figures: dict[str, Any],
) -> None:
    rows = {r["vendor"]: r for r in figures["sections"]["push"]}
    assert rows["facebook_leads"]["status"] == "no destination (a source only)"
    mailchimp = rows["mailchimp"]
    assert mailchimp["status"] == "ok", mailchimp
    assert mailchimp["leads"] >= TINY["push_leads"] and mailchimp["changed"] == TINY["push_leads"]
    assert "POST /3.0/lists/{id}: 1" in mailchimp["routes_changed"]  # one batch call
    assert mailchimp["floor"] == 2
    for vendor, row in rows.items():
        if row["status"] != "ok":
            continue
        assert 0 < row["changed"] <= min(row["leads"], TINY["push_leads"]), vendor
        assert row["calls_unchanged"] == 0, vendor
        assert 1 <= row["calls_changed"] < row["changed"], vendor


def test_webhook_leads_reach_the_crm_scored(figures: dict[str, Any]) -> None:
    row = figures["sections"]["webhook"]
    assert row["status"] == "ok", row
    assert row["deliveries"] == row["scored"] == TINY["webhooks"]
    assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["max_ms"]
    assert row["target_p95_ms"] == 1000


def test_memory_reports_the_rescore_peak_and_a_streaming_pull(figures: dict[str, Any]) -> None:
    rescore, pull = figures["sections"]["memory"]
    assert rescore["peak_mb"] == figures["sections"]["rescore"][0]["peak_rss_mb"]
    assert pull["part"] == "pull" and pull["status"] == "ok", pull
    assert pull["records"] >= TINY["memory_records"] / 2
    assert pull["via"].endswith("sandbox")  # few records: from the fastest sandbox
    assert 0 < pull["baseline_mb"] <= pull["peak_mb"]
    assert abs(pull["growth_mb"] - (pull["peak_mb"] - pull["baseline_mb"])) <= 0.15
    assert 0 <= pull["growth_after_10pct_mb"] <= pull["growth_mb"]


def test_a_large_pull_reads_generated_csv_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory.write_csv(tmp_path, 50)
    leads = (tmp_path / "leads.csv").read_text(encoding="utf-8").splitlines()
    activities = (tmp_path / "activities.csv").read_text(encoding="utf-8").splitlines()
    assert len(leads) - 1 == 5 and len(activities) - 1 == 45
    monkeypatch.setattr(memory, "SANDBOX_LIMIT", 100)
    rescore, row = memory.run(500, "mailchimp")
    assert rescore["status"] == "run with the rescore section for its peak"
    assert row["via"] == "generated CSV files" and row["status"] == "ok"
    assert row["records"] == 500


def test_an_unknown_section_is_refused_before_anything_runs() -> None:
    result = CliRunner().invoke(app, ["bench", "--section", "rescore", "--section", "latency"])
    assert result.exit_code == 2
    assert "unknown section 'latency'" in result.output
    assert "ratio_to_scan" not in result.output  # the rescore did not run


def test_changed_model_moves_only_the_named_leads() -> None:
    (model,) = push.shifted_models(["a@example.com"], points=5)
    rule = model.fit.rules[-1]
    assert rule.name == "Benchmark shift" and rule.points == 5


def test_routes_collapse_ids() -> None:
    path = "/mailchimp/3.0/lists/a1b2c3d4e5/members/0cc175b9c0f1b6a831c399e269772661/tags"
    assert sandboxes.route_of(path) == "/mailchimp/3.0/lists/{id}/members/{id}/tags"
    assert sandboxes.route_of("/facebook_leads/v25.0/7000000000001/leads") == (
        "/facebook_leads/v25.0/{id}/leads"
    )


def test_the_soak_says_what_it_needs_instead_of_figures(figures: dict[str, Any]) -> None:
    row = figures["sections"]["soak"]
    assert "needs --postgres and --redis" in row["status"]
    assert row["drain_seconds"] is None and row["api_p95_ms"] is None
