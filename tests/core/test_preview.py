"""What-if of a candidate model (`core.pipeline.preview`, `leadhub preview`, `leadhub publish`).

The store is tests/web/seed.py's twelve leads, scored under its model (pricing page +25, hot from
70, qualified from 70). The candidate pays 45 for a pricing view and moves hot and qualified up
to 90 (release below 90). By hand, as of seed.LATER:

    leads 0, 2   director 30 + referral 5 + quote 50 = 85  hot, qualified  -> 85 warm, released
    leads 1, 3   director 30 + quote 50 = 80               hot, qualified  -> 80 warm, released
    lead 4       referral 5 + 2 pricing views: 55 warm     -> 5 + 2 x 45 = 95 hot, qualified
    leads 5-7    one pricing view (+5 for 6): 25/30 warm   -> 45/50 warm
    leads 8-11   analysts without activity: 0/5 cold       -> cold
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from core.cli import app
from core.config import load_hub
from core.pipeline import outbox
from core.pipeline import score as scorer
from core.pipeline.preview import NOT_SCORED, SCORE, preview
from core.store.ingest import HISTORY
from core.store.store import Store
from core.store.tables import utcnow
from scoring.model import load_model_file, parse_models
from tests.web import seed

runner = CliRunner()


def candidate(**changes: Any) -> dict[str, Any]:
    model = copy.deepcopy(seed.MODEL)
    model["engagement"]["rules"][1]["points"] = 45
    model["tiers"][0]["min"] = 90
    model["qualified"] = {"total": 90, "release_below": 90}
    model.update(changes)
    return model


def seeded(store: Store) -> None:
    """The seed, plus outbox rows for a destination, so 'writes nothing' covers the outbox."""
    seed.seed(store)
    dest = outbox.DestinationSettings(name="crm", connector="webhook", system="crm")
    assert outbox.plan(store, dest).pending == 12


def snapshot(store: Store) -> dict[str, list[str]]:
    """Every row of every table, as text, in primary-key order."""
    meta = sa.MetaData()
    meta.reflect(store.engine)
    with store.engine.connect() as conn:
        return {
            name: [repr(tuple(row)) for row in conn.execute(t.select().order_by(*t.primary_key))]
            for name, t in meta.tables.items()
        }


def emails(changes: list[Any]) -> set[str]:
    return {c.email for c in changes}


def test_preview_reports_the_hand_computed_changes_and_writes_nothing(
    store: Store, tmp_path: Path
) -> None:
    seeded(store)
    before = snapshot(store)
    assert before["score"] and before["score_history"] and before["outbox"]
    report = preview(
        store, seed.hub(tmp_path), parse_models({"models": [candidate()]}), now=seed.LATER
    )
    assert snapshot(store) == before  # no score, history, outbox, meta or run row moved
    (p,) = report.models
    assert report.leads == 12 and p.leads == 12
    assert p.from_tiers == p.to_tiers == ["hot", "warm", "cold"]
    assert p.moves == {
        "hot": {"hot": 0, "warm": 4, "cold": 0},
        "warm": {"hot": 1, "warm": 3, "cold": 0},
        "cold": {"hot": 0, "warm": 0, "cold": 4},
    }
    assert p.tier_changes == 5
    assert (p.qualified_before, p.qualified_after) == (4, 1)
    assert emails(p.newly_qualified) == {"lead4@acme.example"}
    (lead4,) = p.newly_qualified
    assert (lead4.total_before, lead4.total_after) == (55, 95)
    assert (lead4.tier_before, lead4.tier_after) == ("warm", "hot")
    assert emails(p.no_longer_qualified) == {f"lead{i}@acme.example" for i in range(4)}
    rules = {r.name: r for r in p.rules}
    # five pricing views in all (two for lead 4, one each for 5-7): 5 x 25 now, 5 x 45 after
    pricing = rules["Pricing page"]
    assert (pricing.current_leads, pricing.current_count, pricing.current_points) == (4, 5, 125)
    assert (pricing.candidate_leads, pricing.candidate_count, pricing.candidate_points) == (
        4, 5, 225,
    )  # fmt: skip
    # six referral leads (even ids) x 5, unchanged
    assert (rules["Referral"].current_points, rules["Referral"].candidate_points) == (30, 30)
    assert p.notes == []


def test_conversion_by_bracket_scores_decided_leads_before_their_outcome(
    store: Store, tmp_path: Path
) -> None:
    # Decided: 0, 1, 4 won, 8, 9 lost, closed at seed.NOW, so lead 4 is seen with its first
    # pricing view only: 5 + 25 = 30 now, 5 + 45 = 50 with the candidate.
    seeded(store)
    report = preview(
        store, seed.hub(tmp_path), parse_models({"models": [candidate()]}), now=seed.LATER
    )
    got = {
        b.low: (b.current.decided, b.current.converted, b.candidate.decided, b.candidate.converted)
        for b in report.models[0].conversion
        if b.current is not None and (b.current.decided or b.candidate.decided)
    }
    assert got == {0: (2, 0, 2, 0), 30: (1, 1, 0, 0), 50: (0, 0, 1, 1), 80: (2, 2, 2, 2)}


def test_a_model_new_to_the_store_and_a_narrower_segment(store: Store, tmp_path: Path) -> None:
    seeded(store)
    # same name, but scoring only paid_social leads (odd ids): the even ones leave the model
    narrower = candidate(segment={"channel": ["paid_social"]})
    fresh = {**candidate(), "name": "upsell"}
    report = preview(
        store, seed.hub(tmp_path), parse_models({"models": [narrower, fresh]}), now=seed.LATER
    )
    narrow, new = report.models
    assert sum(narrow.moves[t][NOT_SCORED] for t in narrow.from_tiers) == 6
    assert NOT_SCORED not in narrow.from_tiers
    # nothing stored under `upsell`: every lead comes from the not-scored row
    assert new.from_tiers == [NOT_SCORED]
    assert new.moves[NOT_SCORED] == {"hot": 1, "warm": 7, "cold": 4}
    assert new.qualified_before == 0 and emails(new.newly_qualified) == {"lead4@acme.example"}
    assert all(b.current is None for b in new.conversion)
    assert new.notes and "no model named 'upsell'" in new.notes[0]
    assert json.loads(json.dumps(report.to_json()))["models"][1]["model"] == "upsell"


def test_stored_scores_of_another_model_version_are_flagged(store: Store, tmp_path: Path) -> None:
    seeded(store)
    hub = seed.hub(tmp_path)
    hub.models[0] = parse_models({"models": [candidate()]})[0]  # the file changed, not rescored
    report = preview(store, hub, hub.models, now=seed.LATER)
    assert "12 stored score(s)" in report.models[0].notes[0]


# -- the commands ------------------------------------------------------------------------------


def hub_dir(tmp_path: Path, model: dict[str, Any], **dests: Any) -> Path:
    (tmp_path / "models.yaml").write_text(yaml.safe_dump({"models": [model]}), encoding="utf-8")
    body: dict[str, Any] = {"scoring": "models.yaml"}
    if dests:
        body["destinations"] = dests
    (tmp_path / "leadhub.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    (tmp_path / "candidate.yaml").write_text(
        yaml.safe_dump({"models": [candidate()]}), encoding="utf-8"
    )
    return tmp_path


def cli(directory: Path, db_url: str, *args: str) -> Any:
    base = ["-c", str(directory / "leadhub.yaml"), "--database-url", db_url]
    return runner.invoke(app, [*base, *args])


def test_preview_command_prints_the_comparison_and_json(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    seeded(store)
    directory = hub_dir(tmp_path, seed.MODEL)
    before = snapshot(store)
    shown = cli(directory, db_url, "preview", str(directory / "candidate.yaml"))
    assert shown.exit_code == 0, shown.output
    assert "tier moves (5 change)" in shown.output
    assert "qualified: 4 now, 1 with the candidate" in shown.output
    assert "lead4@acme.example" in shown.output and "nothing written" in shown.output
    out = cli(directory, db_url, "preview", str(directory / "candidate.yaml"), "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)["models"][0]
    assert data["moves"]["hot"]["warm"] == 4 and data["tier_changes"] == 5
    assert data["qualified_before"] == 4 and data["qualified_after"] == 1
    assert snapshot(store) == before
    missing = cli(directory, db_url, "preview", str(directory / "candidate.yaml"), "--model", "x")
    assert missing.exit_code == 2 and "no model named 'x'" in missing.output


def test_publish_replaces_the_model_file_and_the_next_score_uses_it(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    seeded(store)
    directory = hub_dir(tmp_path, seed.MODEL)
    old = (directory / "models.yaml").read_text()
    done = cli(directory, db_url, "publish", str(directory / "candidate.yaml"))
    assert done.exit_code == 0, done.output
    assert (directory / "models.yaml").read_text() == (directory / "candidate.yaml").read_text()
    assert (directory / "models.yaml.previous").read_text() == old
    again = cli(directory, db_url, "publish", str(directory / "candidate.yaml"))
    assert again.exit_code == 0 and "nothing to publish" in again.output
    assert cli(directory, db_url, "score").exit_code == 0
    # the stored scores now match what the preview predicted for lead 4 and leads 0-3
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT lead.email, score.tier, score.qualified FROM score "
                "JOIN lead ON lead.id = score.lead_id"
            )
        ).all()
    state = {email: (tier, bool(qualified)) for email, tier, qualified in rows}
    assert state["lead4@acme.example"] == ("hot", True)
    assert state["lead0@acme.example"] == ("warm", False)


def test_publish_refuses_an_invalid_file_or_one_missing_a_destinations_model(
    db_url: str, tmp_path: Path
) -> None:
    webhook = {"connector": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "s3cret-key",
               "model": "default"}  # fmt: skip
    directory = hub_dir(tmp_path, seed.MODEL, crm=webhook)
    old = (directory / "models.yaml").read_text()
    bad = directory / "bad.yaml"
    bad.write_text("models:\n  - name: default\n    tiers: [{name: hot}, {name: warm}]\n")
    refused = cli(directory, db_url, "publish", str(bad))
    assert refused.exit_code == 2 and "bad.yaml" in refused.output
    other = directory / "other.yaml"
    other.write_text(yaml.safe_dump({"models": [{**candidate(), "name": "upsell"}]}))
    refused = cli(directory, db_url, "publish", str(other))
    assert refused.exit_code == 2 and "destinations.crm" in refused.output
    assert (directory / "models.yaml").read_text() == old
    assert not (directory / "models.yaml.previous").exists()


@pytest.mark.parametrize("scoring", [{"models": [seed.MODEL]}, None])
def test_publish_needs_a_model_file_path_in_the_hub_file(
    db_url: str, tmp_path: Path, scoring: Any
) -> None:
    hub_dir(tmp_path, seed.MODEL)
    body = {} if scoring is None else {"scoring": scoring}
    (tmp_path / "leadhub.yaml").write_text(yaml.safe_dump(body))
    refused = cli(tmp_path, db_url, "publish", str(tmp_path / "candidate.yaml"))
    assert refused.exit_code == 2 and "must name a model file" in refused.output


def test_on_the_demo_data_the_preview_is_what_a_score_run_then_does(tmp_path: Path) -> None:
    # The oracle is the score step itself: publish the candidate, score at the same moment, and
    # read the tier and qualified moves off the stored scores and the history's events.
    demo = runner.invoke(app, ["demo", "--dir", str(tmp_path), "--sandbox-port", "0",
                               "--people", "80"])  # fmt: skip
    assert demo.exit_code == 0, demo.output
    hub = load_hub(tmp_path / "leadhub.yaml")
    text = (tmp_path / "models.yaml").read_text()
    changed = text.replace("points: 20}", "points: 35}").replace(
        "{total: 70, release_below: 60}", "{total: 55, release_below: 50}"
    )
    assert changed != text
    (tmp_path / "candidate.yaml").write_text(changed)
    candidates = load_model_file(tmp_path / "candidate.yaml")
    store = Store(f"sqlite:///{tmp_path / 'leadhub.db'}")
    try:
        now = utcnow()
        before = tiers(store)
        (p,) = preview(store, hub, candidates, now=now).models
        assert tiers(store) == before
        scorer.score(store, candidates, now=now)
        after = tiers(store)
        with store.engine.connect() as conn:
            events = dict(
                conn.execute(
                    sa.select(HISTORY.c.lead_id, HISTORY.c.event).where(
                        HISTORY.c.model_hash == candidates[0].content_hash,
                        HISTORY.c.event.is_not(None),
                    )
                ).all()
            )
    finally:
        store.close()
    moves: Counter[tuple[str, str]] = Counter((before[i][0], after[i][0]) for i in before)
    assert {(a, b): n for a, row in p.moves.items() for b, n in row.items() if n} == dict(moves)
    assert p.tier_changes > 0 and p.newly_qualified
    assert {c.lead_id for c in p.newly_qualified} == {
        i for i, e in events.items() if e == "qualified"
    }
    assert {c.lead_id for c in p.no_longer_qualified} == {
        i for i, e in events.items() if e == "released"
    }
    assert p.qualified_after == sum(q for _, q in after.values())


def tiers(store: Store) -> dict[int, tuple[str, bool]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(SCORE.c.lead_id, SCORE.c.tier, SCORE.c.qualified)).all()
    return {lead_id: (tier, bool(qualified)) for lead_id, tier, qualified in rows}
