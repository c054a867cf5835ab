"""What a loaded hub file means that it should not (its shape is `core.config`'s concern).

Files a source reads that do not exist; scoring rules on unknown event types or fields, negative
caps, tier gaps, decay steps that do not grow (`scoring.validate`); destinations naming no model
or source, or writing an output their model never gives; `identity.priority` naming no field or
source. `leadhub check` reports these after the shape checks of `load_hub`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.config import HubConfig
from core.records import ACTIVITY_TYPES, LEAD_FIELDS
from scoring.model import ScoringModel
from scoring.validate import Problem, check_models, did_you_mean

# What a destination can write for a model that lacks the block producing it.
OUTPUT_NEEDS = {
    "tier": "tiers",
    "grade": "grade",
    "qualified": "qualified",
    "qualified_at": "qualified",
}


def check_hub(hub: HubConfig) -> list[Problem]:
    """What a loaded hub file means that it should not: every problem, errors before warnings.

    Files a source reads that do not exist; scoring rules on unknown event types or fields,
    negative caps, tier gaps, decay steps that do not grow; destinations naming no model or
    source, or writing an output their model does not give.
    """
    problems = _input_files(hub)
    file = str(hub.models_file) if hub.models_file else None
    prefix = "" if file else "scoring."
    problems += check_models(
        hub.models, events=ACTIVITY_TYPES, fields=LEAD_FIELDS, prefix=prefix, file=file
    )
    problems += _destinations(hub)
    problems += _priority(hub)
    return sorted(problems, key=lambda p: p.severity != "error")  # stable: file order kept


def _input_files(hub: HubConfig) -> list[Problem]:
    """Each file a source reads (its settings' `input_files(base_dir)`, if any) must exist."""
    problems = []
    for name, source in hub.sources.items():
        files = getattr(source.settings, "input_files", None)
        if files is None:
            continue
        for key, path in files(hub.base_dir).items():
            if path.is_file():
                continue
            near = did_you_mean(path.name, _names_in(path.parent))
            state = "is not a file" if path.exists() else "does not exist"
            problems.append(Problem(f"sources.{name}.{key}", f"{path} {state}{near}"))
    return problems


def _names_in(directory: Path) -> list[str]:
    try:
        return [p.name for p in directory.iterdir()]
    except OSError:
        return []


def _destinations(hub: HubConfig) -> list[Problem]:
    models = {m.name: m for m in hub.models}
    problems = []
    for name, dest in hub.destinations.items():
        settings = dest.settings
        if settings is None:
            continue
        where = f"destinations.{name}"
        model = models.get(settings.model)
        if model is None:
            known = ", ".join(models) or "none"
            problems.append(
                Problem(
                    f"{where}.model",
                    f"no scoring model {settings.model!r}{did_you_mean(settings.model, models)} "
                    f"(models: {known})",
                )
            )
        for source in settings.sources or ():
            if source not in hub.sources:
                hint = did_you_mean(source, hub.sources)
                problems.append(Problem(f"{where}.sources", f"no source named {source!r}{hint}"))
        if model is not None and isinstance(dest.raw.get("fields"), dict):
            problems += _unproduced_outputs(where, settings.fields, model)
    return problems


def _unproduced_outputs(
    where: str, fields: Mapping[Any, str], model: ScoringModel
) -> list[Problem]:
    """Outputs mapped to a CRM field that the model never gives a value (always empty)."""
    given = {
        "tiers": bool(model.tiers),
        "grade": model.grade is not None,
        "qualified": model.qualified is not None,
    }
    return [
        Problem(
            f"{where}.fields.{output}",
            f"model {model.name!r} has no `{block}:`, so {crm_field!r} would always be empty",
        )
        for output, crm_field in fields.items()
        if (block := OUTPUT_NEEDS.get(output)) is not None and not given[block]
    ]


def _priority(hub: HubConfig) -> list[Problem]:
    problems = []
    for lead_field, sources in hub.field_priority.items():
        key = f"identity.priority.{lead_field}"
        if lead_field not in LEAD_FIELDS:
            hint = did_you_mean(lead_field, LEAD_FIELDS)
            problems.append(Problem(key, f"unknown lead field {lead_field!r}{hint}"))
        for source in sources:
            if source not in hub.sources:
                hint = did_you_mean(source, hub.sources)
                problems.append(Problem(key, f"no source named {source!r}{hint}"))
    return problems
