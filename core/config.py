"""The hub file (leadhub.yaml): sources, destinations and scoring, validated into models.

Every connector block is validated by that connector's own settings model, and every error names
its path in the file (`sources.fb.page_id: field required`), with a suggestion for a misspelt key
(`sorces: unknown section (did you mean 'sources'?)`). `${VAR}` (or `${VAR:-default}`)
interpolates environment variables so secrets stay out of the file.

`load_hub` checks shape: a file that fails it cannot be used at all. `core.hubcheck` checks
meaning on a loaded hub; `leadhub check` runs both. Reference: docs/hub-file.md.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from connectors.base import registry
from connectors.base.settings import OUTPUTS, WRITEBACK_KEYS, DestinationSettings
from connectors.base.settings import describe as settings_describe
from core.channels import use_overrides
from core.errors import ConfigError
from core.http import register_secret
from scoring.model import ModelError, ScoringModel, load_model_file, parse_models, yaml_problem
from scoring.validate import CLOSE, Problem, did_you_mean

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
TOP_LEVEL = ("sources", "destinations", "scoring", "identity", "channels")
SOURCE_COMMON = {"schedule", "enabled"}


class HubFileError(ConfigError):
    """The hub file (or its model file) is invalid; `problems` lists each key and what is wrong."""

    def __init__(self, path: Path, problems: list[Problem]) -> None:
        lines = "\n  ".join(str(p) for p in problems)
        super().__init__(f"{path} is invalid:\n  {lines}")
        self.path = path
        self.problems = problems


@dataclass(frozen=True)
class SourceConfig:
    name: str
    connector: str
    settings: Any
    schedule: str | None = None
    enabled: bool = True


@dataclass(frozen=True)
class DestinationConfig:
    name: str
    connector: str
    raw: Mapping[str, Any]
    settings: DestinationSettings | None = None  # validated by `connectors.base.settings`


@dataclass(frozen=True)
class HubConfig:
    path: Path
    sources: dict[str, SourceConfig] = field(default_factory=dict)
    destinations: dict[str, DestinationConfig] = field(default_factory=dict)
    models: list[ScoringModel] = field(default_factory=list)
    field_priority: dict[str, list[str]] = field(default_factory=dict)
    models_file: Path | None = None  # where `scoring:` points; None when inline or absent
    channels: dict[str, str] = field(default_factory=dict)  # vendor value -> canonical channel

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def source(self, name: str) -> SourceConfig:
        if name not in self.sources:
            known = ", ".join(self.sources) or "none"
            raise ConfigError(f"{self.path}: no source named {name!r} (configured: {known})")
        return self.sources[name]

    def destination(self, name: str) -> DestinationConfig:
        if name not in self.destinations:
            known = ", ".join(self.destinations) or "none"
            raise ConfigError(f"{self.path}: no destination named {name!r} (configured: {known})")
        return self.destinations[name]


def interpolate(value: Any, path: str = "", env: Mapping[str, str] | None = None) -> Any:
    """Replace `${VAR}` / `${VAR:-default}` in every string; a missing variable names itself."""
    env = os.environ if env is None else env
    if isinstance(value, dict):
        return {k: interpolate(v, _join(path, k), env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, f"{path}[{i}]", env) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"{path}: environment variable {name} is not set")

    return _VAR.sub(replace, value)


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def describe(exc: ValidationError, prefix: str, known: Iterable[str] = ()) -> list[str]:
    """One line per pydantic error, each naming its path in the hub file (the contract's
    `describe`), with a "did you mean" for a misspelt key among `known`."""
    return _suggest_unknown(settings_describe(exc, prefix), known)


def _problem(line: str) -> Problem:
    """A `key: message` line as a Problem (a line without a key keeps its text as the message)."""
    key, sep, message = line.partition(": ")
    return Problem(key, message) if sep else Problem("", line)


def _suggest_unknown(lines: list[str], known: Iterable[str]) -> list[str]:
    """Add "did you mean" to `unknown setting` lines that a validator elsewhere wrote."""
    names = list(known)
    out = []
    for line in lines:
        key, _, message = line.partition(": ")
        if message == "unknown setting":
            line += did_you_mean(key.rpartition(".")[2], names)
        out.append(line)
    return out


def register_secrets(model: BaseModel) -> None:
    """Tell the log redactor about every secret value in a settings model."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr) and value.get_secret_value():
            register_secret(value.get_secret_value())
        elif isinstance(value, BaseModel):
            register_secrets(value)


def load_hub(path: Path, env: Mapping[str, str] | None = None) -> HubConfig:
    """Read and validate the hub file at `path`; raise ConfigError listing every problem."""
    if not path.exists():
        raise ConfigError(f"hub file {path} not found (create one with `leadhub init`)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: {yaml_problem(exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the hub file must be a mapping of sources, destinations, …")
    errors: list[str] = [
        f"{k}: unknown section{did_you_mean(str(k), TOP_LEVEL)}" for k in raw if k not in TOP_LEVEL
    ]
    raw = interpolate(raw, "", env)
    sources = _load_sources(raw.get("sources") or {}, path.parent, errors)
    destinations = _load_destinations(raw.get("destinations") or {}, errors)
    problems = [_problem(line) for line in errors]
    models = _load_models(raw.get("scoring"), path.parent, problems)
    priority = _load_priority(raw.get("identity") or {}, problems)
    channels = _load_channels(raw.get("channels") or {}, problems)
    if problems:
        raise HubFileError(path, problems)
    scoring = raw.get("scoring")
    models_file = path.parent / scoring if isinstance(scoring, str) else None
    use_overrides(channels)  # the store applies them to every lead it writes from now on
    return HubConfig(
        path, sources, destinations, models, priority, models_file=models_file, channels=channels
    )


def _no_connector(where: str, block: Any) -> str:
    """Why a block has no connector: a misspelt `connector` key is named as such."""
    if isinstance(block, dict):
        for key in block:
            if did_you_mean(str(key), ["connector"], CLOSE):
                return f"{where}.{key}: unknown key (did you mean 'connector'?)"
    return f"{where}.connector: field required"


class _Connectors(Mapping[str, Any]):
    """The installed connectors by name, each imported when a block first names it: a hub with
    one CSV source does not import every vendor's client (commands start faster).

    A name that no entry point gives is looked up in the full registry
    (`connectors.base.registry.load_connectors`, which code may extend at runtime).
    """

    def __init__(self) -> None:
        self._points = {ep.name: ep for ep in entry_points(group="leadhub.connectors")}
        self._loaded: dict[str, Any] = {}
        self._others: dict[str, Any] | None = None
        self.broken: dict[str, str] = {}

    def __getitem__(self, name: str) -> Any:
        if name in self._loaded:
            return self._loaded[name]
        if name not in self._points:
            return self._registered()[name]
        if name in self.broken:
            raise KeyError(name)
        try:
            self._loaded[name] = self._points[name].load()
        except Exception as exc:  # a plugin's import error is its own, not the hub's
            self.broken[name] = f"{type(exc).__name__}: {exc}"
            raise KeyError(name) from None
        return self._loaded[name]

    def _registered(self) -> dict[str, Any]:
        if self._others is None:
            found = registry.load_connectors()
            self._others = {k: v for k, v in found.items() if k not in self._points}
        return self._others

    def __iter__(self) -> Iterator[str]:
        names = set(self._points) | set(self._registered())
        return iter(sorted(names - set(self.broken)))

    def __len__(self) -> int:
        return len(list(iter(self)))


def _load_sources(raw: Any, base_dir: Path, errors: list[str]) -> dict[str, SourceConfig]:
    if not isinstance(raw, dict):
        errors.append("sources: must be a mapping of source name to settings")
        return {}
    connectors = _Connectors()
    found = {}
    for name, block in raw.items():
        where = f"sources.{name}"
        if not isinstance(block, dict) or "connector" not in block:
            errors.append(_no_connector(where, block))
            continue
        kind = block["connector"]
        if kind not in connectors:
            if kind in connectors.broken:
                problem = f"connector {kind!r} is installed but failed to load: "
                problem += connectors.broken[kind]
            else:
                problem = f"unknown connector {kind!r}{did_you_mean(str(kind), connectors)} "
                problem += f"(known: {', '.join(sorted(connectors))})"
            errors.append(f"{where}.connector: {problem}")
            continue
        body = {k: v for k, v in block.items() if k not in SOURCE_COMMON}
        model = connectors[kind].settings_model
        try:
            settings = model.model_validate(body, context={"base_dir": base_dir})
        except ValidationError as exc:
            errors.extend(describe(exc, where, [*model.model_fields, *SOURCE_COMMON]))
            continue
        register_secrets(settings)
        found[name] = SourceConfig(
            name, kind, settings, block.get("schedule"), bool(block.get("enabled", True))
        )
    return found


def _load_destinations(raw: Any, errors: list[str]) -> dict[str, DestinationConfig]:
    if not isinstance(raw, dict):
        errors.append("destinations: must be a mapping of destination name to settings")
        return {}
    connectors = _Connectors()
    found = {}
    for name, block in raw.items():
        if not isinstance(block, dict) or "connector" not in block:
            errors.append(_no_connector(f"destinations.{name}", block))
            continue
        settings, problems = registry.validate_destination(name, block, connectors)
        connector = connectors.get(block["connector"])
        own = getattr(connector, "destination_settings_model", None) or getattr(
            connector, "settings_model", None
        )
        known = [*WRITEBACK_KEYS, *(own.model_fields if own is not None else ())]
        problems = _suggest_unknown(problems, known)
        errors.extend(_name_outputs(name, block, problems, OUTPUTS))
        if settings is not None:
            register_secrets(settings.options)
            found[name] = DestinationConfig(name, block["connector"], block, settings)
    return found


def _name_outputs(
    name: str, block: Mapping[str, Any], lines: list[str], outputs: Iterable[str]
) -> list[str]:
    """Rewrite pydantic's "Input should be 'total', …" for a `fields:` key that is no output."""
    fields = block.get("fields")
    if not isinstance(fields, dict):
        return lines
    out = []
    known = list(outputs)
    for line in lines:
        key = next(
            (
                k
                for k in fields
                if k not in known and line.startswith(f"destinations.{name}.fields.{k}")
            ),
            None,
        )
        if key is None:
            out.append(line)
        else:
            out.append(
                f"destinations.{name}.fields.{key}: no output named {key!r}"
                f"{did_you_mean(str(key), known)} (outputs: {', '.join(known)})"
            )
    return list(dict.fromkeys(out))  # pydantic reports a bad key once per check it fails


def _load_models(raw: Any, base_dir: Path, problems: list[Problem]) -> list[ScoringModel]:
    if raw is None:
        return []
    try:
        if isinstance(raw, str):
            return load_model_file(base_dir / raw)
        if isinstance(raw, dict):
            return parse_models(raw, base_dir=base_dir, source="scoring")
    except ModelError as exc:
        file = exc.source if isinstance(raw, str) else None
        for line in exc.problems:
            found = _problem(line)
            key = found.key if file else _join("scoring", found.key)
            problems.append(Problem(key, found.message, file=file))
        return []
    except OSError as exc:
        problems.append(Problem("scoring", f"cannot read model file {raw!r}: {exc.strerror}"))
        return []
    problems.append(Problem("scoring", "must be a model file path or a mapping with `models:`"))
    return []


def _load_channels(raw: Any, problems: list[Problem]) -> dict[str, str]:
    if not isinstance(raw, dict):
        message = 'must map a source\'s value to a channel, e.g. {"Web": organic}'
        problems.append(Problem("channels", message))
        return {}
    found = {}
    for key, value in raw.items():
        if not isinstance(value, str) or not value.strip():
            problems.append(Problem(f"channels.{key}", "must be a channel name (text)"))
        else:
            found[str(key)] = value
    return found


def _load_priority(raw: Any, problems: list[Problem]) -> dict[str, list[str]]:
    priority = raw.get("priority", {}) if isinstance(raw, dict) else None
    if not isinstance(priority, dict) or not all(
        isinstance(v, list) and all(isinstance(s, str) for s in v) for v in priority.values()
    ):
        problems.append(
            Problem("identity.priority", "must map a lead field to a list of source names")
        )
        return {}
    return {str(k): list(v) for k, v in priority.items()}
