"""Fixtures for the jobs tests: short lock ttls and backoffs, a private PostgreSQL schema, hub
files, and subprocesses (workers, schedulers) that are always killed at teardown.

The `LEADHUB_JOBS_*` settings below are read by `core.jobs.broker.configure()`; they are set here,
for the tests in this process and the workers they start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from core.store.db import create_engine
from tests.conftest import PG_URL, need_service

FAST = {
    "LEADHUB_JOBS_LOCK_TTL": "2",
    "LEADHUB_JOBS_HEARTBEAT_TIMEOUT": "3",
    "LEADHUB_JOBS_MAINTENANCE_CHANCE": "1000000",  # every broker command looks for dead workers
    "LEADHUB_JOBS_MAX_RETRIES": "2",
    "LEADHUB_JOBS_MIN_BACKOFF": "0.1",
    "LEADHUB_JOBS_MAX_BACKOFF": "0.3",
    "LEADHUB_JOBS_BUSY_DELAY": "0.3",
}
os.environ.update(FAST)
os.environ.pop("LEADHUB_BROKER_URL", None)  # this process runs the embedded (stub) broker
# Every queue the jobs use, with its delay queue: `idle` checks are about all of them.
QUEUES = [
    f"leadhub{kind}{delay}"
    for kind in ("", ".intake", ".pull", ".score", ".push")
    for delay in ("", ".DQ")
]
ROOT = Path(__file__).resolve().parents[2]
# One schema per pytest process (workers it starts inherit the URL), so two runs never collide.
SCHEMA = f"leadhub_jobs_{os.getpid()}"


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """PostgreSQL in a schema of its own, empty, so other suites' resets never touch it."""
    url = need_service(PG_URL, "PostgreSQL", "LEADHUB_TEST_DATABASE_URL")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        conn.execute(sa.text(f"CREATE SCHEMA {SCHEMA}"))
    engine.dispose()
    sep = "&" if "?" in url else "?"
    yield f"{url}{sep}options=-csearch_path%3D{SCHEMA}"


@pytest.fixture(scope="session", autouse=True)
def _drop_jobs_schema() -> Iterator[None]:
    """This process's jobs schema goes at the end of the run (its workers are gone by then)."""
    yield
    if not PG_URL:
        return
    engine = create_engine(PG_URL)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("SET LOCAL lock_timeout = '5s'"))
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
    except sa.exc.SQLAlchemyError:
        pass  # a straggler still holds it, or the server went away: nothing to clean here
    finally:
        engine.dispose()


def write_hub(path: Path, sources: dict[str, Any], **sections: Any) -> Path:
    path.write_text(yaml.safe_dump({"sources": sources, **sections}), encoding="utf-8")
    return path


class Processes:
    """Starts leadhub commands in their own process groups; `kill_all` ends every one."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[subprocess.Popen[bytes]] = []

    def leadhub(self, *args: str, env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
        log = (self.tmp_path / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.jobs.leadhub_cli", *args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: a kill reaches the worker children too
        )
        self.started.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")

    @staticmethod
    def kill(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):  # it ended already
            os.killpg(proc.pid, sig)

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
        """SIGTERM to the command (it stops its own children), then SIGKILL after `timeout` s."""
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill(proc)
            proc.wait()

    def kill_all(self) -> None:
        for proc in self.started:
            self.kill(proc)
            proc.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.kill_all()
