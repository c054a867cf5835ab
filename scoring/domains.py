"""Domain lists for the `domain_in` operator: inline, built-in (`@free_email`) or a file.

A list resolves when the model file is loaded, and the resolved domains are part of the model, so
editing a domain file changes the model's content hash (and triggers a rescore).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

BUILTIN_LISTS = ("free_email", "disposable_email")


@lru_cache(maxsize=len(BUILTIN_LISTS))
def builtin_domains(name: str) -> tuple[str, ...]:
    """A built-in domain list such as `free_email` (shipped as scoring/data/<name>.txt)."""
    if name not in BUILTIN_LISTS:
        raise KeyError(name)
    return parse_domains((resources.files("scoring") / "data" / f"{name}.txt").read_text())


def parse_domains(text: str) -> tuple[str, ...]:
    """One domain per line; blank lines and `#` comments are skipped; sorted, lowercase."""
    lines = (line.split("#", 1)[0].strip().lower().lstrip("@") for line in text.splitlines())
    return tuple(sorted({line for line in lines if line}))


def resolve_domains(operand: Any, base_dir: Path | None) -> tuple[str, ...]:
    """A list of domains, a `@builtin` name or a file path (relative to `base_dir`) → domains.

    Raises ValueError naming `domain_in` and what is wrong.
    """
    if isinstance(operand, (list, tuple)) and operand and all(isinstance(d, str) for d in operand):
        return parse_domains("\n".join(operand))
    if not isinstance(operand, str) or not operand.strip():
        raise ValueError("domain_in: expected a list of domains, a built-in list or a file path")
    if operand.startswith("@"):
        try:
            return builtin_domains(operand[1:])
        except KeyError:
            known = ", ".join(f"@{name}" for name in BUILTIN_LISTS)
            raise ValueError(f"domain_in: no built-in list {operand!r} (known: {known})") from None
    path = (base_dir or Path.cwd()) / operand
    try:
        return parse_domains(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"domain_in: cannot read domain file {str(path)!r}: {exc}") from None
