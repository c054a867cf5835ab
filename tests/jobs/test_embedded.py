"""Embedded mode: the same actors on dramatiq's stub broker, run by threads in this process.

Pins the behaviour of the actors themselves: a pull asks for a score, requests are coalesced, a
busy source drops the tick, a late tick runs late, a rate-limited pull is handed back with a
delay, retries are bounded, and failed messages land in the store's dead letters, from where
`leadhub dlq requeue` runs them again.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from typer.testing import CliRunner

from core.jobs.broker import runtime
from core.jobs.locks import StoreLease
from core.settings import Settings
from core.store.store import SYNC_RUN, Store
from tests.jobs.conftest import Processes, wait_for, write_hub


@pytest.fixture
def hub(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A hub file with one ticker source, and the jobs (stub broker) on a fresh SQLite store."""
    from core.jobs import actors  # noqa: F401  (declares the actors)
    from core.jobs.broker import configure, reset_context
    from tests.jobs import ticker  # noqa: F401  (registers the ticker connector)

    path = tmp_path / "leadhub.yaml"

    def write(**settings: Any) -> Path:
        source = {"connector": "ticker", "pages": 3, "per_page": 4, "redis_url": redis_url}
        return write_hub(path, {"alpha": {**source, "schedule": "*/5 * * * *", **settings}})

    write()
    monkeypatch.setenv("LEADHUB_CONFIG", str(path))
    monkeypatch.setenv("LEADHUB_DATABASE_URL", f"sqlite:///{tmp_path / 'leadhub.db'}")
    broker = configure(Settings(broker_url=None))
    yield write
    broker.flush_all()
    reset_context()


def runs(store: Store, kind: str = "pull") -> list[tuple[str, str | None]]:
    query = sa.select(SYNC_RUN.c.status, SYNC_RUN.c.error).where(SYNC_RUN.c.kind == kind)
    with store.engine.connect() as conn:
        return [(r.status, r.error) for r in conn.execute(query.order_by(SYNC_RUN.c.id))]


def metric(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_pull_stores_every_page_and_enqueues_a_score(hub: Any) -> None:
    from core.jobs import actors as jobs

    scored = metric("leadhub_messages_total", actor="score", outcome="ok")
    jobs.pull.send("alpha")
    jobs.run_until_idle()
    store = jobs.context()[0]
    assert store.count("lead") == 12
    assert runs(store) == [("ok", None)]
    assert metric("leadhub_messages_total", actor="score", outcome="ok") == scored + 1


def test_a_pull_that_finds_its_source_busy_is_dropped_not_queued(hub: Any) -> None:
    from core.jobs import actors as jobs
    from core.jobs.broker import request

    store = jobs.context()[0]
    other = StoreLease(store, "pull:alpha", ttl=30)
    assert other.acquire()  # another worker is pulling alpha
    dropped = metric("leadhub_dropped_messages_total", actor="pull", reason="busy")
    assert request("pull", "alpha")
    jobs.run_until_idle()
    assert runs(store) == []
    assert metric("leadhub_dropped_messages_total", actor="pull", reason="busy") == dropped + 1
    other.release()
    assert request("pull", "alpha")  # the dropped one stands for no request: the next one goes


def test_a_score_that_finds_its_lock_busy_comes_back_and_runs_once_it_is_free(hub: Any) -> None:
    from core.jobs import actors as jobs

    store = jobs.context()[0]
    other = StoreLease(store, "score", ttl=30)
    assert other.acquire()  # another worker is scoring
    deferred = metric("leadhub_deferred_messages_total", actor="score")
    ran = metric("leadhub_messages_total", actor="score", outcome="ok")

    def release_after_two_deferrals() -> None:
        # busy_delay is 0.3 s (conftest): the score comes back while the lease is held; the
        # lease goes once it came back twice (however long the worker took to start)
        until = time.monotonic() + 10
        while time.monotonic() < until:
            if metric("leadhub_deferred_messages_total", actor="score") >= deferred + 2:
                break
            time.sleep(0.02)
        other.release()

    releaser = threading.Thread(target=release_after_two_deferrals)
    releaser.start()
    jobs.score.send()
    jobs.run_until_idle(timeout=15)
    releaser.join()
    assert metric("leadhub_deferred_messages_total", actor="score") >= deferred + 2
    assert metric("leadhub_messages_total", actor="score", outcome="ok") == ran + 1


def test_a_rate_limited_pull_is_handed_back_with_a_delay_and_resumes(
    hub: Any, redis_url: str
) -> None:
    from core.jobs import actors as jobs
    from core.jobs import deadletters

    hub(fail="ratelimit_once")
    jobs.pull.send("alpha", full=True)
    jobs.run_until_idle(timeout=10)
    store = jobs.context()[0]
    assert store.count("lead") == 12
    (first, first_error), second = runs(store)
    assert first == "failed" and "slow down" in (first_error or "")
    assert second == ("ok", None)
    # Full only the first time: page 0 was committed, so the second read starts at page 1.
    events = redis.Redis.from_url(redis_url).lrange("ticker:alpha:events", 0, -1)
    assert [e.split()[2] for e in events if e.startswith(b"enter")] == [b"0", b"1"]
    assert deadletters.list_dead_letters(runtime().broker, runtime().settings.queue, store) == []


def test_transient_failures_are_retried_a_bounded_number_of_times(hub: Any) -> None:
    from core.jobs import actors as jobs
    from core.jobs import deadletters

    hub(fail="transient")
    jobs.pull.send("alpha")
    jobs.run_until_idle(timeout=10)
    store = jobs.context()[0]
    retries = runtime().settings.max_retries
    assert [status for status, _ in runs(store)] == ["failed"] * (retries + 1)
    (letter,) = deadletters.list_dead_letters(runtime().broker, runtime().settings.queue, store)
    assert (letter.actor, letter.args, letter.retries) == ("pull", ["alpha"], 2)
    assert "TransientError" in letter.error


def test_a_permanent_error_is_dead_lettered_at_once_and_requeue_runs_it(hub: Any) -> None:
    from core.cli import app
    from core.jobs import actors as jobs
    from tests.jobs import leadhub_cli  # noqa: F401  (registers the jobs commands)

    hub(fail="auth")
    jobs.pull.send("alpha")
    jobs.run_until_idle(timeout=10)
    store = jobs.context()[0]
    assert [status for status, _ in runs(store)] == ["failed"]  # not retried: a token is bad

    listed = CliRunner().invoke(app, ["dlq", "--json"])
    assert listed.exit_code == 0, listed.output
    (letter,) = json.loads(listed.stdout)
    assert (letter["actor"], letter["args"], letter["retries"]) == ("pull", ["alpha"], 0)
    assert "AuthError" in letter["error"] and "renew" in letter["error"]

    hub(fail="none")  # the operator renewed the token
    requeued = CliRunner().invoke(app, ["dlq", "requeue", letter["id"][:8]])
    assert requeued.exit_code == 0, requeued.output
    assert store.count("lead") == 12
    assert json.loads(CliRunner().invoke(app, ["dlq", "--json"]).stdout) == []


def test_requeue_names_an_unknown_id(hub: Any) -> None:
    from core.cli import app
    from tests.jobs import leadhub_cli  # noqa: F401

    result = CliRunner().invoke(app, ["dlq", "requeue", "nosuchid"])
    assert result.exit_code == 2
    assert "nosuchid" in result.output


def test_status_rows_show_next_run_lag_and_dead_letters(hub: Any) -> None:
    from collections import Counter

    from core.cli.jobs import status_rows
    from core.jobs import actors as jobs

    jobs.pull.send("alpha")
    jobs.run_until_idle()
    store, config = jobs.context()
    rows = {r["name"]: r for r in status_rows(store, config, dead=Counter({("pull", "alpha"): 2}))}
    alpha = rows["alpha"]
    assert (alpha["kind"], alpha["result"], alpha["created"]) == ("source", "ok", 12)
    assert alpha["next_run"] is not None and alpha["next_run"].minute % 5 == 0
    assert alpha["lag_seconds"] is not None and alpha["lag_seconds"] < 60
    assert alpha["dead_letters"] == 2
    assert rows["all"]["kind"] == "score"


def test_a_late_tick_runs_once_and_is_counted_late_not_dropped(hub: Any) -> None:
    from core.jobs import actors as jobs
    from core.jobs import deadletters

    late = metric("leadhub_late_messages_total", actor="pull")
    # Due every second, and it waited five in the queue (workers busy, or down).
    message = jobs.pull.message_with_options(args=("alpha",), late_after=1000)
    runtime().broker.enqueue(message.copy(message_timestamp=message.message_timestamp - 5000))
    jobs.run_until_idle()
    store = jobs.context()[0]
    assert runs(store) == [("ok", None)]
    assert store.count("lead") == 12
    assert deadletters.list_dead_letters(runtime().broker, runtime().settings.queue, store) == []
    assert metric("leadhub_late_messages_total", actor="pull") == late + 1


def test_requests_for_one_target_queue_one_message_until_it_starts(hub: Any) -> None:
    from core.jobs import actors as jobs
    from core.jobs.broker import queue_of, request

    broker = runtime().broker
    sent = [request("score") for _ in range(50)] + [request("push", "crm") for _ in range(3)]
    assert sent.count(True) == 2  # one score, one push to crm
    assert request("push", "other")  # another destination is another target
    assert broker.queues[queue_of("score")].qsize() == 1
    assert broker.queues[queue_of("push")].qsize() == 2
    scored = metric("leadhub_messages_total", actor="score", outcome="ok")
    jobs.run_until_idle()
    assert metric("leadhub_messages_total", actor="score", outcome="ok") == scored + 1
    assert request("score")  # the queued one has run: a new request sends again


def test_status_json_lists_targets_and_the_scheduler(
    hub: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.cli.common import state
    from core.cli.jobs import show_status
    from core.jobs import actors as jobs

    jobs.pull.send("alpha")
    jobs.run_until_idle()
    state.settings, state._store, state._hub = Settings(), None, None
    show_status(as_json=True)
    shown = json.loads(capsys.readouterr().out)
    assert shown["scheduler"] is None
    assert [(t["kind"], t["name"], t["result"]) for t in shown["targets"]] == [
        ("source", "alpha", "ok"),
        ("score", "all", None),
    ]
    assert shown["locks"] == []  # the pull released its lease
    if state._store is not None:
        state._store.close()
    state._store, state._hub = None, None


def test_status_shows_held_locks_and_marks_one_whose_holder_is_gone(
    hub: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import os
    import socket
    import subprocess
    import sys

    from core.cli.common import state
    from core.cli.jobs import show_status
    from core.jobs import actors as jobs

    store = jobs.context()[0]
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    gone = f"{socket.gethostname()}:{ended.stdout.strip()}:deadbeef"  # a process that has ended
    assert StoreLease(store, "pull:alpha", ttl=30, token=gone).acquire()
    mine = StoreLease(store, "push:crm", ttl=30)  # this process, renewing on time
    assert mine.acquire()
    state.settings, state._store, state._hub = Settings(), None, None
    show_status(as_json=True)
    shown = json.loads(capsys.readouterr().out)
    assert [(x["name"], x["holder"], x["stale"]) for x in shown["locks"]] == [
        ("pull:alpha", gone, True),
        ("push:crm", mine.token, False),
    ]
    assert mine.token.split(":")[1] == str(os.getpid())
    if state._store is not None:
        state._store.close()
    state._store, state._hub = None, None


@pytest.mark.e2e
def test_leadhub_run_schedules_and_works_in_one_process_and_stops_cleanly(
    tmp_path: Path, redis_url: str, processes: Processes
) -> None:
    source = {"connector": "ticker", "redis_url": redis_url, "schedule": "* * * * * *"}
    env = {
        "LEADHUB_CONFIG": str(write_hub(tmp_path / "leadhub.yaml", {"alpha": source})),
        "LEADHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'leadhub.db'}",
    }
    run = processes.leadhub("run", "--threads", "2", env=env, name="run")
    store = Store(env["LEADHUB_DATABASE_URL"])
    wait_for(lambda: store.count("lead") == 15 and "ok" in dict(runs(store)), 30, "a pull")
    processes.stop(run)
    assert run.returncode == 0, processes.log("run")
    store.close()
