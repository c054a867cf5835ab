"""What a model means, checked: rules that can never fire, caps that harm, tiers that leave gaps.

`parse_models` checks a model's shape (types, one operator per rule, tiers in order). A model of
the right shape can still do nothing or harm: an event type nobody sends (`webinar_atended`), a
field no lead has (`compnay_size`), `max: -10` (every lead gets -10), a lowest tier with a `min`
(leads below it get no tier). `check_models` finds those. It stays pure: the caller says which
event types and fields exist (`core.records` knows them; scoring imports nothing from core).

    problems = check_models(models, events=ACTIVITY_TYPES, fields=LEAD_FIELDS)
    for p in problems: print(p)   # models[0].engagement.rules[3] (Webinar).event: unknown ...
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from scoring.model import EngagementSection, FitSection, ScoringModel

Severity = Literal["error", "warning"]
# How alike a misspelling and the name it was meant to be must be (difflib's ratio). 0.8 takes
# `compnay_size` → company_size and `jobtitle` → job_title, and leaves `country_code` alone.
CLOSE = 0.8


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a file: `key` is where (a path in the file), `message` what and why.

    An error makes `leadhub check` exit 2; a warning is shown and does not.
    """

    key: str
    message: str
    severity: Severity = "error"
    file: str | None = None  # the file `key` is in, when it is not the hub file

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}" if self.file else self.key
        return f"{where}: {self.message}" if where else self.message

    def as_dict(self) -> dict[str, str | None]:
        """The problem as `check --json` prints it."""
        return {
            "severity": self.severity,
            "file": self.file,
            "key": self.key,
            "message": self.message,
        }


def did_you_mean(name: str, known: Iterable[str], cutoff: float = 0.6) -> str:
    """` (did you mean 'x'?)` when a known name is close to `name`, else ""."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=cutoff)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_models(
    models: Sequence[ScoringModel],
    *,
    events: Collection[str],
    fields: Collection[str],
    prefix: str = "",
    file: str | None = None,
) -> list[Problem]:
    """Every problem of meaning in `models`; keys are paths in `file` after `prefix`.

    `events` are the activity types connectors produce (`custom:<name>` is always allowed);
    `fields` the lead fields (a bare name outside them reads the lead's custom fields).
    """
    problems: list[Problem] = []
    for index, model in enumerate(models):
        checker = _ModelChecker(model, f"{prefix}models[{index}]", events, fields, file)
        problems.extend(checker.run())
    return problems


@dataclass
class _ModelChecker:
    model: ScoringModel
    where: str
    events: Collection[str]
    fields: Collection[str]
    file: str | None
    problems: list[Problem] = field(default_factory=list)

    def run(self) -> list[Problem]:
        self._fields()
        self._events()
        self._caps()
        self._tiers()
        self._decay()
        self._qualified()
        return self.problems

    def _add(self, key: str, message: str, severity: Severity = "error") -> None:
        self.problems.append(Problem(f"{self.where}.{key}", message, severity, self.file))

    def _fields(self) -> None:
        for name in self.model.segment:
            self._field(f"segment.{name}", name, "the segment")
        for i, rule in enumerate(self.model.fit.rules):
            self._field(f"fit.rules[{i}] ({rule.name}).field", rule.field, "the rule")

    def _field(self, key: str, name: str, what: str) -> None:
        if name in self.fields or name.startswith("custom."):
            return
        hint = did_you_mean(name, self.fields, CLOSE)
        if hint:
            self._add(
                key,
                f"unknown field {name!r}{hint}: no lead has it, so {what} never matches "
                f"(write `custom.{name}` if it is a custom field)",
            )
        else:
            self._add(
                key,
                f"{name!r} is not a lead field, so {what} reads the custom field "
                f"`custom.{name}` (write it that way to say so)",
                "warning",
            )

    def _events(self) -> None:
        for i, rule in enumerate(self.model.engagement.rules):
            event = rule.event
            if event in self.events or (event.startswith("custom:") and len(event) > 7):
                continue
            hint = did_you_mean(event, self.events)
            self._add(
                f"engagement.rules[{i}] ({rule.name}).event",
                f"unknown event type {event!r}{hint}: the rule never fires "
                f"(types: {', '.join(sorted(self.events))}, or custom:<name>)",
            )

    def _caps(self) -> None:
        sections: list[tuple[str, FitSection | EngagementSection | ScoringModel]] = [
            ("fit.", self.model.fit),
            ("engagement.", self.model.engagement),
            ("", self.model),
        ]
        for key, section in sections:
            cap = section.max
            if cap is not None and cap < 0:
                label = key.rstrip(".") or "total"
                self._add(
                    f"{key}max",
                    f"{cap:g} is below zero: every lead's {label} would be at most {cap:g} "
                    f"(`max` caps what a section adds; a floor is `min`)",
                )

    def _tiers(self) -> None:
        tiers = self.model.tiers
        if not tiers or tiers[-1].min is None:
            return
        lowest = tiers[-1]
        assert lowest.min is not None
        floor = self.model.min
        if floor is None or floor < lowest.min:
            below = f"{lowest.min:g}" if floor is None else f"{lowest.min:g} (down to {floor:g})"
            self._add(
                f"tiers[{len(tiers) - 1}] ({lowest.name}).min",
                f"no tier catches totals below {below}: those leads get no tier; leave `min` "
                f"out of the last tier so it catches the rest",
            )
        ceiling = self.model.max
        for i, tier in enumerate(tiers):
            if ceiling is not None and tier.min is not None and tier.min > ceiling:
                self._add(
                    f"tiers[{i}] ({tier.name}).min",
                    f"{tier.min:g} is above the total's max ({ceiling:g}): no lead reaches it",
                    "warning",
                )

    def _decay(self) -> None:
        steps = self.model.engagement.decay.inactivity
        for (_, shallow), (j, deep) in itertools.pairwise(enumerate(steps)):
            if deep.minus <= shallow.minus:
                self._add(
                    f"engagement.decay.inactivity[{j}].minus",
                    f"{deep.minus:g} after {deep.days:g} days is not more than the "
                    f"{shallow.minus:g} after {shallow.days:g} days: the deeper step applies "
                    f"once reached, so a longer silence would cost less (or nothing more)",
                )

    def _qualified(self) -> None:
        rule = self.model.qualified
        if rule is None:
            return
        limits = (
            ("total", rule.total, self.model.max),
            ("fit", rule.fit, self.model.fit.max),
            ("engagement", rule.engagement, self.model.engagement.max),
        )
        for name, needed, cap in limits:
            if needed is not None and cap is not None and needed > cap:
                where = "max" if name == "total" else f"{name}.max"
                self._add(
                    f"qualified.{name}",
                    f"{needed:g} is above `{where}` ({cap:g}): no lead can qualify",
                )
