"""Crashes: a `pull` or `push` process SIGKILLed at random points, ten times in a row; after the
run that follows, no lead, activity or score update is lost or duplicated — the store and the
destinations hold exactly what a run without crashes leaves.

The sandboxes run in this process with a little latency, so a kill lands mid-request, mid-page
or mid-commit; the point is a random count of vendor requests into the run plus a random delay.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from core.store.store import Store
from tests.e2e.harness import (
    CORE_VENDORS,
    CRM_BATCH,
    ROOT,
    Sandboxes,
    differences,
    full_cycle,
    hub_config,
    sandboxes,
    snapshot,
    write_hub,
)

pytestmark = pytest.mark.e2e
KILLS = 10
LATENCY = 0.01


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    """The store and destinations after a run without crashes."""
    tmp_path = tmp_path_factory.mktemp("baseline")
    with sandboxes(CORE_VENDORS) as clean:
        hub = write_hub(tmp_path / "clean", hub_config(clean, CORE_VENDORS))
        store = Store(f"sqlite:///{tmp_path / 'clean.db'}")
        full_cycle(store, hub)
        result = snapshot(store), clean.destination_state()
        store.close()
    return result


class ForkServer:
    """`tests.e2e.runner fork`: runs a step in a fresh child process on request."""

    def __init__(self, hub: Path, db_url: str, log: Path) -> None:
        env = {**os.environ, "LEADHUB_CONFIG": str(hub), "LEADHUB_DATABASE_URL": db_url}
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.runner", "fork"], cwd=ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def start(self, step: str) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write(step + "\n")
        self.proc.stdin.flush()
        word, pid = self.lines.get(timeout=60).split()
        assert word == "started"
        return int(pid)

    def exited(self, pid: int, timeout: float = 0) -> int | None:
        """The child's wait status once it has ended (waiting up to `timeout` s), else None."""
        try:
            word, which, status = self.lines.get(timeout=timeout).split() if timeout else \
                self.lines.get_nowait().split()  # fmt: skip
        except queue.Empty:
            return None
        assert (word, int(which)) == ("exited", pid)
        return int(status)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)
        self.log.close()


def kill_repeatedly(step: str, sandbox: Sandboxes, server: ForkServer, rng: random.Random) -> int:
    """Run `step` again and again, SIGKILLing each run a random number of vendor requests (plus
    a random delay) into it; returns how many runs were killed (a run may finish first)."""
    kills = 0
    for _ in range(3 * KILLS):
        if kills == KILLS:
            break
        start = sandbox.faults.requests
        target, extra = start + rng.randint(1, 8), rng.uniform(0, 0.03)
        pid = server.start(step)
        deadline = time.monotonic() + 60
        status = None
        while sandbox.faults.requests < target and status is None:
            assert time.monotonic() < deadline, f"{step} made no request"
            status = server.exited(pid)
            time.sleep(0.002)
        if status is None:
            time.sleep(extra)
            os.kill(pid, signal.SIGKILL)
            status = server.exited(pid, timeout=30)
            assert status is not None
            if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
                kills += 1
    return kills


@pytest.mark.parametrize("step", ["pull", "push"])
def test_a_process_killed_ten_times_loses_and_duplicates_nothing(
    step: str, db_url: str, tmp_path: Path, baseline: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    expected, expected_dest = baseline
    rng = random.Random(f"{step}-{db_url[:10]}")
    Store(db_url).close()  # migrated once, before any process can be killed mid-migration
    with sandboxes(CORE_VENDORS, latency=LATENCY) as sandbox:
        hub = write_hub(tmp_path / "crashing", hub_config(sandbox, CORE_VENDORS))
        store = Store(db_url, migrate=False)
        if step == "push":
            full_cycle(store, hub, push=False)  # stored and scored; the pushes get killed
        server = ForkServer(hub, db_url, tmp_path / f"{step}.log")
        try:
            kills = kill_repeatedly(step, sandbox, server, rng)
        finally:
            server.close()
        # The scheduler's next run, to completion (a push never pulls again: the pushes
        # themselves change Mailchimp members, which a pull would read back).
        full_cycle(store, hub, max_rounds=2, pull=step == "pull")
        actual, actual_dest = snapshot(store), sandbox.destination_state()
        deliveries = sandbox.recorder.deliveries
        with store.engine.connect() as conn:
            query = sa.text("SELECT count(*) FROM sync_run WHERE kind = :k AND status = 'running'")
            never_finished = int(conn.execute(query, {"k": step}).scalar() or 0)
        store.close()

    assert kills == KILLS
    # Killed runs stay marked running (a kill in the gap between two sources' runs leaves none).
    assert KILLS // 2 <= never_finished <= kills
    assert differences(expected, actual) == {}
    assert differences(expected_dest, actual_dest) == {}
    # At least once, and no more: only a batch in flight when its process died is sent again.
    resent = sum(deliveries.values()) - len(deliveries)
    assert resent <= (kills * CRM_BATCH if step == "push" else 0)
