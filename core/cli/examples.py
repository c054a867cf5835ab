"""`leadhub init`: the example hub file, model file and CSV data a new user starts from."""

from __future__ import annotations

import shutil
from pathlib import Path

from core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = {
    "leadhub.yaml": Path(__file__).parent / "templates" / "leadhub.yaml",
    "models.yaml": ROOT / "scoring" / "examples" / "default.yaml",
    "data/leads.csv": ROOT / "connectors" / "csv" / "examples" / "leads.csv",
    "data/activities.csv": ROOT / "connectors" / "csv" / "examples" / "activities.csv",
    "data/outcomes.csv": ROOT / "connectors" / "csv" / "examples" / "outcomes.csv",
}


def write_examples(directory: Path, *, force: bool = False) -> list[Path]:
    """Copy the examples into `directory`; refuse to overwrite unless `force`."""
    targets = {directory / name: source for name, source in TEMPLATES.items()}
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        names = ", ".join(str(t) for t in existing)
        raise ConfigError(f"{names} already exist(s); pass --force to overwrite")
    for target, source in targets.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return list(targets)
