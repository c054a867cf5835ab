"""Builders shared by the scoring tests: a fixed `NOW`, activities by age, one-model files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from scoring.engine import Activity, ScoreResult, score_lead
from scoring.model import ScoringModel, parse_models

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def ago(days: float = 0, hours: float = 0) -> datetime:
    """The moment `days` and `hours` before NOW."""
    return NOW - timedelta(days=days, hours=hours)


def act(kind: str, days_ago: float = 0, **properties: Any) -> Activity:
    """An activity of type `kind`, `days_ago` days before NOW."""
    return Activity(kind, ago(days_ago), properties)


def model(**spec: Any) -> ScoringModel:
    """A model named "m" from keyword arguments shaped like the YAML."""
    return parse_models({"models": [{"name": "m", **spec}]})[0]


def engagement_model(*rules: dict[str, Any], **section: Any) -> ScoringModel:
    """A model with only engagement rules (and optional section keys such as decay or max)."""
    return model(engagement={"rules": list(rules), **section})


def score(m: ScoringModel, activities: list[Activity] | None = None, **fields: Any) -> ScoreResult:
    """Score lead `fields` with `activities` as of NOW."""
    return score_lead(fields, activities or [], m, NOW)


def ledger_total(result: ScoreResult) -> float:
    """The ledger's points summed to the cent."""
    return round(sum(e.points for e in result.ledger), 2)


def entries(result: ScoreResult, kind: str) -> dict[str, tuple[int, float]]:
    """`{name: (count, points)}` of the ledger entries of one kind."""
    return {e.name: (e.count, e.points) for e in result.ledger if e.kind == kind}
