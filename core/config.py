"""The hub file (leadhub.yaml): sources, destinations and scoring, validated into models.

Every connector block is validated by that connector's own settings model, and every error names
its path in the file (`sources.fb.page_id: field required`). `${VAR}` (or `${VAR:-default}`)
interpolates environment variables so secrets stay out of the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from core.channels import use_overrides
from core.errors import ConfigError
from core.http import register_secret
from scoring.model import ModelError, ScoringModel, load_model_file, parse_models

if TYPE_CHECKING:
    from connectors.base.settings import DestinationSettings

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
TOP_LEVEL = {"sources", "destinations", "scoring", "identity", "channels"}
SOURCE_COMMON = {"schedule", "enabled"}


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


def describe(exc: ValidationError, prefix: str) -> list[str]:
    """One line per pydantic error, each naming its path in the hub file."""
    lines = []
    for err in exc.errors():
        where = prefix
        for part in err["loc"]:
            where = f"{where}[{part}]" if isinstance(part, int) else _join(where, part)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "field required"
        elif err["type"] == "extra_forbidden":
            msg = "unknown setting"
        lines.append(f"{where}: {msg}")
    return lines


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
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the hub file must be a mapping of sources, destinations, …")
    errors: list[str] = [f"{k}: unknown section" for k in raw if k not in TOP_LEVEL]
    raw = interpolate(raw, "", env)
    sources = _load_sources(raw.get("sources") or {}, path.parent, errors)
    destinations = _load_destinations(raw.get("destinations") or {}, errors)
    models = _load_models(raw.get("scoring"), path.parent, errors)
    priority = _load_priority(raw.get("identity") or {}, errors)
    channels = _load_channels(raw.get("channels") or {}, errors)
    if errors:
        raise ConfigError(f"{path} is invalid:\n  " + "\n  ".join(errors))
    use_overrides(channels)  # the store applies them to every lead it writes from now on
    return HubConfig(path, sources, destinations, models, priority, channels)


def _load_sources(raw: Any, base_dir: Path, errors: list[str]) -> dict[str, SourceConfig]:
    from connectors.base.contract import load_connectors

    if not isinstance(raw, dict):
        errors.append("sources: must be a mapping of source name to settings")
        return {}
    connectors = load_connectors()
    found = {}
    for name, block in raw.items():
        where = f"sources.{name}"
        if not isinstance(block, dict) or "connector" not in block:
            errors.append(f"{where}.connector: field required")
            continue
        kind = block["connector"]
        if kind not in connectors:
            errors.append(
                f"{where}.connector: unknown connector {kind!r} "
                f"(known: {', '.join(sorted(connectors))})"
            )
            continue
        body = {k: v for k, v in block.items() if k not in SOURCE_COMMON}
        try:
            settings = connectors[kind].settings_model.model_validate(
                body, context={"base_dir": base_dir}
            )
        except ValidationError as exc:
            errors.extend(describe(exc, where))
            continue
        register_secrets(settings)
        found[name] = SourceConfig(
            name, kind, settings, block.get("schedule"), bool(block.get("enabled", True))
        )
    return found


def _load_destinations(raw: Any, errors: list[str]) -> dict[str, DestinationConfig]:
    from connectors.base.contract import load_connectors
    from connectors.base.settings import validate_destination

    if not isinstance(raw, dict):
        errors.append("destinations: must be a mapping of destination name to settings")
        return {}
    connectors = load_connectors()
    found = {}
    for name, block in raw.items():
        if not isinstance(block, dict) or "connector" not in block:
            errors.append(f"destinations.{name}.connector: field required")
            continue
        settings, problems = validate_destination(name, block, connectors)
        errors.extend(problems)
        if settings is not None:
            register_secrets(settings.options)
            found[name] = DestinationConfig(name, block["connector"], block, settings)
    return found


def _load_models(raw: Any, base_dir: Path, errors: list[str]) -> list[ScoringModel]:
    if raw is None:
        return []
    try:
        if isinstance(raw, str):
            return load_model_file(base_dir / raw)
        if isinstance(raw, dict):
            return parse_models(raw, base_dir=base_dir, source="inline models")
    except (ModelError, OSError) as exc:
        errors.append(f"scoring: {exc}")
        return []
    errors.append("scoring: must be a model file path or a mapping with `models:`")
    return []


def _load_channels(raw: Any, errors: list[str]) -> dict[str, str]:
    if not isinstance(raw, dict):
        errors.append('channels: must map a source\'s value to a channel, e.g. {"Web": organic}')
        return {}
    found = {}
    for key, value in raw.items():
        if not isinstance(value, str) or not value.strip():
            errors.append(f"channels.{key}: must be a channel name (text)")
        else:
            found[str(key)] = value
    return found


def _load_priority(raw: Any, errors: list[str]) -> dict[str, list[str]]:
    priority = raw.get("priority", {}) if isinstance(raw, dict) else None
    if not isinstance(priority, dict) or not all(
        isinstance(v, list) and all(isinstance(s, str) for s in v) for v in priority.values()
    ):
        errors.append("identity.priority: must map a lead field to a list of source names")
        return {}
    return {str(k): list(v) for k, v in priority.items()}
