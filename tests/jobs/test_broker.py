"""The broker is the application's to configure: nothing is built when core.jobs is imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

IMPORT_ONLY = """
import dramatiq.broker
import core.jobs.actors as actors
from core.errors import ConfigError

assert dramatiq.broker.global_broker is None, dramatiq.broker.global_broker
try:
    actors.score.send()
except ConfigError as exc:
    print("refused:", exc)
"""


def test_importing_the_actors_builds_no_broker_and_sending_says_to_configure() -> None:
    # A fresh interpreter: in this one, other tests have configured the jobs already.
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ONLY],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "LEADHUB_BROKER_URL": "redis://127.0.0.1:1/0"},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "refused: cannot send score" in done.stdout
    assert "configure()" in done.stdout


def test_configure_moves_actors_declared_before_it_onto_its_broker() -> None:
    from dramatiq.brokers.stub import StubBroker

    from core.jobs import actors
    from core.jobs.broker import JobSettings, configure
    from core.settings import Settings

    broker = configure(Settings(broker_url=None), JobSettings(queue="elsewhere"))
    try:
        assert isinstance(broker, StubBroker)
        assert actors.score.broker is broker and actors.score.queue_name == "elsewhere.score"
        assert {"pull", "score", "rescore_all", "decay", "push"} <= broker.get_declared_actors()
        # one queue per kind of work, under the configured prefix
        assert actors.push.send("crm").queue_name == "elsewhere.push"
        assert actors.pull.send("crm").queue_name == "elsewhere.pull"
        assert actors.decay.send().queue_name == "elsewhere.score"
    finally:
        broker.flush_all()
        configure(Settings(broker_url=None))  # the defaults again, for the tests that follow


def test_worker_queues_name_kinds_of_work_and_refuse_an_unknown_one() -> None:
    import pytest

    from core.cli.jobs import _queue_names
    from core.errors import ConfigError

    assert _queue_names("pull, push") == ["leadhub.pull", "leadhub.push"]
    assert _queue_names("intake,score,other") == ["leadhub.intake", "leadhub.score", "leadhub"]
    with pytest.raises(ConfigError, match="no kind of work 'scores'"):
        _queue_names("scores")
