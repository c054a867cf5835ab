"""The memory of a successful property check, so pushes do not re-read unchanged properties.

After `prepare()` has found (or made) every property a destination writes, the fact is kept in
`.leadhub/hubspot-properties-<fingerprint>.json` next to the hub file (mode 0600, written
atomically) for `property_check_hours`. The fingerprint covers the portal (base URL, API version,
portal id or credential fingerprint), the property group and each property with the type it must
hold, so changing any of them checks again. The file also keeps the tier property's options, which
are needed to add new tier values. A write that says a property does not exist forgets the check.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.base.state import read_json, write_private_json

Options = dict[str, list[dict[str, Any]]]


def fingerprint(parts: Mapping[str, Any]) -> str:
    """A stable digest of what was checked (no secret enters it: only digests of them)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class PropertyCheck:
    """Remembers, per fingerprint, when the properties were last checked and their options.

    Parameters:
        folder: the `.leadhub` folder next to the hub file.
        digest: the fingerprint of the portal and the properties (see `fingerprint`).
        hours: how long a check holds; 0 checks on every push.
        clock: wall-clock seconds (tests).
    """

    def __init__(self, folder: Path, digest: str, hours: float, clock: Callable[[], float]) -> None:
        self.path = folder / f"hubspot-properties-{digest[:16]}.json"
        self.digest, self.hours, self._clock = digest, hours, clock
        self._lock = threading.Lock()

    def recall(self) -> Options | None:
        """The remembered options when a check holds for this fingerprint, else None."""
        if self.hours <= 0:
            return None
        saved = self._read()
        if saved is None:
            return None
        checked = saved.get("checked_at_epoch")
        if not isinstance(checked, int | float):
            return None
        age = self._clock() - float(checked)
        if age < 0 or age >= self.hours * 3600:
            return None
        options = saved.get("options")
        if not isinstance(options, dict):
            return None
        return {str(k): [o for o in v if isinstance(o, dict)] for k, v in options.items()
                if isinstance(v, list)}  # fmt: skip

    def remember(self, options: Options, *, keep_time: bool = False) -> None:
        """Keep the fact of a successful check (now), or just new options (`keep_time`)."""
        if self.hours <= 0:
            return
        checked: float = self._clock()
        if keep_time:
            saved = self._read()
            if saved is None or not isinstance(saved.get("checked_at_epoch"), int | float):
                return  # nothing remembered: the next push checks anyway
            checked = float(saved["checked_at_epoch"])
        payload = {
            "fingerprint": self.digest,
            "checked_at": datetime.fromtimestamp(checked, tz=UTC).isoformat(),
            "checked_at_epoch": checked,
            "options": options,
        }
        with self._lock:
            write_private_json(self.path, payload)

    def forget(self) -> None:
        """The next push checks (and recreates) the properties again."""
        with self._lock:
            self.path.unlink(missing_ok=True)

    def _read(self) -> dict[str, Any] | None:
        saved = read_json(self.path)
        if saved is None or saved.get("fingerprint") != self.digest:
            return None
        return saved
