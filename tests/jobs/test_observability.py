"""Structured logs and Prometheus metrics, in-process and from worker processes."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
from pathlib import Path

import httpx
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker

from core.logs import JsonFormatter
from core.metrics import metrics_app, record_api_call
from tests.jobs.conftest import Processes, wait_for, write_hub


def test_json_logs_carry_the_extra_fields_and_the_exception() -> None:
    record = logging.makeLogRecord(
        {"name": "leadhub.jobs", "levelname": "ERROR", "msg": "pull %s failed", "args": ("crm",)}
    )
    record.source = "crm"
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    data = json.loads(line)
    assert "\n" not in line
    assert (data["level"], data["logger"]) == ("error", "leadhub.jobs")
    assert data["message"] == "pull crm failed"
    assert data["source"] == "crm"
    assert "ValueError: boom" in data["exception"]


def test_the_metrics_app_answers_prometheus_scrapes() -> None:
    async def scrape() -> str:
        transport = httpx.ASGITransport(app=metrics_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            return (await client.get("/metrics")).text

    record_api_call("hubspot", 429)
    body = asyncio.run(scrape())
    assert 'leadhub_api_calls_total{status="429",vendor="hubspot"}' in body


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.e2e
def test_workers_serve_metrics_of_all_processes_and_log_json(
    tmp_path: Path, redis_url: str, processes: Processes
) -> None:
    from core.jobs import actors as jobs

    client, port = redis.Redis.from_url(redis_url), _free_port()
    source = {"connector": "ticker", "redis_url": redis_url, "pages": 2}
    env = {
        "LEADHUB_BROKER_URL": redis_url,
        "LEADHUB_CONFIG": str(write_hub(tmp_path / "leadhub.yaml", {"alpha": source})),
        "LEADHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'leadhub.db'}",
    }
    processes.leadhub(
        "--log-level", "INFO", "worker", "-p", "2", "-t", "1", "-m", "tests.jobs.ticker",
        "--metrics-port", str(port), "--log-format", "json", env=env, name="workers",
    )  # fmt: skip
    wait_for(lambda: client.zcard("dramatiq:__heartbeats__") >= 2, 30, "two worker processes")
    broker = RedisBroker(url=redis_url)
    for _ in range(2):
        broker.enqueue(jobs.pull.message("alpha"))

    def scrape() -> str:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/metrics").text
        except httpx.HTTPError:
            return ""

    def pulled_twice() -> bool:
        for line in scrape().splitlines():
            if line.startswith('leadhub_messages_total{actor="pull",outcome="ok"}'):
                return float(line.split()[-1]) == 2.0
        return False

    wait_for(pulled_twice, 30, "two pulls counted across the worker processes")
    assert "leadhub_queue_lag_seconds_bucket" in scrape()

    def logged() -> list[dict[str, str]]:
        lines = processes.log("workers").splitlines()
        return [json.loads(line) for line in lines if line.strip()]  # every line is JSON

    wait_for(lambda: any(e["logger"] == "leadhub.jobs" for e in logged()), 10, "our log lines")
