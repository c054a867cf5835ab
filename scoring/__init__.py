"""Scoring: the model-file schema and the pure engine that turns a lead into a score.

from scoring import load_model_file, score_lead, segment_matches
"""

from scoring.engine import Activity, LedgerEntry, QualifiedState, ScoreResult, score_lead
from scoring.model import (
    ModelError,
    ModelFile,
    ScoringModel,
    load_model_file,
    parse_models,
    segment_matches,
)

__all__ = [
    "Activity",
    "LedgerEntry",
    "ModelError",
    "ModelFile",
    "QualifiedState",
    "ScoreResult",
    "ScoringModel",
    "load_model_file",
    "parse_models",
    "score_lead",
    "segment_matches",
]
