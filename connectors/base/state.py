"""Small private state files next to the hub file (`.leadhub/`): rotated refresh tokens, remembered
checks. Written atomically with mode 0600, so a crash never leaves half a file and no other user
can read a token.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def read_json(path: Path) -> dict[str, Any] | None:
    """The object stored at `path`, or None when it is missing, unreadable or not an object."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) else None


def write_private_json(path: Path, payload: dict[str, Any]) -> None:
    """Replace `path` with `payload` atomically; the file is readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(payload, out)
    os.replace(temp, path)  # readers see the old file or the new one, never half of it


class RefreshTokenFile:
    """Where a rotated OAuth refresh token is kept between runs.

    The token on file is used only while the configured token is the one it was rotated from
    (compared by digest): a user who pastes a new token into the hub file gets that one.
    """

    def __init__(self, path: Path, configured_digest: str) -> None:
        self.path, self.configured_digest = path, configured_digest

    def load(self) -> str | None:
        saved = read_json(self.path)
        if saved is None or saved.get("configured_sha256") != self.configured_digest:
            return None
        token = saved.get("refresh_token")
        return token if isinstance(token, str) and token else None

    def save(self, refresh_token: str) -> None:
        write_private_json(
            self.path,
            {
                "refresh_token": refresh_token,
                "configured_sha256": self.configured_digest,
                "saved_at": datetime.now(UTC).isoformat(),
            },
        )
