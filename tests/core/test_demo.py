"""`leadhub demo` on a fresh directory: sandboxes up, pulled, scored, pushed, ranked."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import sqlalchemy as sa
from typer.testing import CliRunner

from core.cli import app

runner = CliRunner()


def test_demo_runs_the_whole_loop_against_the_sandboxes(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["demo", "--dir", str(tmp_path), "--sandbox-port", "0", "--people", "120"]
    )
    assert result.exit_code == 0, result.output
    for vendor in ("hubspot", "salesforce", "facebook", "mailchimp"):
        assert f"pulled {vendor}" in result.output
    assert "leads — model default" in result.output
    # the CRM and email records themselves now carry the scores leadhub wrote
    assert "what landed on the sandbox records" in result.output
    assert "leadhub_score=" in result.output and "LSCORE=" in result.output
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'leadhub.db'}")
    with engine.connect() as conn:
        scored = conn.execute(sa.text("SELECT count(*) FROM score")).scalar_one()
        sent = conn.execute(sa.text("SELECT count(*) FROM outbox WHERE state = 'sent'")).scalar()
        leads = conn.execute(sa.text("SELECT count(*) FROM lead")).scalar_one()
    engine.dispose()
    assert leads > 50 and scored == leads
    assert sent and sent > 0  # scores landed on the sandbox CRM records
    # the hub file it wrote is valid and the store answers the next commands it suggests
    base = ["-c", str(tmp_path / "leadhub.yaml"), "--database-url",
            f"sqlite:///{tmp_path / 'leadhub.db'}"]  # fmt: skip
    assert runner.invoke(app, [*base, "check"]).exit_code == 0
    top = json.loads(runner.invoke(app, [*base, "leads", "--top", "3", "--json"]).stdout)
    assert len(top) == 3 and top[0]["total"] >= top[2]["total"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_demo_serves_the_dashboard_on_port_and_its_next_steps_run_as_printed(
    tmp_path: Path,
) -> None:
    # The README's setup: leadhub lives in .venv/bin, which is not on PATH.
    leadhub = Path(sys.executable).parent / "leadhub"
    bin_dir = str(leadhub.parent)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != bin_dir)
    env = {**os.environ, "PATH": path, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    env = {k: v for k, v in env.items() if not k.startswith("LEADHUB_")}
    port = free_port()
    home = tmp_path / "demo"
    command = [str(leadhub), "demo", "--dir", str(home), "--people", "60", "--sandbox-port", "0",
               "--serve", "--port", str(port)]  # fmt: skip
    demo = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        lines = []
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("dashboard at"):
                break
        assert lines and lines[-1].startswith(f"dashboard at http://127.0.0.1:{port}/"), lines
        answer = None
        for _ in range(100):
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert answer is not None and answer.status_code == 200
        assert "leadhub" in answer.text
        start = next(i for i, line in enumerate(lines) if line.startswith("next, try"))
        steps = [line.split("#")[0].strip() for line in lines[start + 1 : -1] if line.strip()]
        assert len(steps) == 6 and all("leadhub" in step for step in steps)
        for step in steps[:-1]:  # the last one, `init`, writes example files where it runs
            done = subprocess.run(step, shell=True, cwd=tmp_path, env=env, capture_output=True,
                                  text=True, timeout=60)  # fmt: skip
            assert done.returncode == 0, (step, done.stdout, done.stderr)
        init = subprocess.run(steps[-1], shell=True, cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        assert init.returncode == 0 and (tmp_path / "leadhub.yaml").exists(), init.stderr
    finally:
        demo.terminate()
        _, errors = demo.communicate(timeout=30)
    # the hub file it generated is complete: nothing to warn about when the dashboard mounts it
    assert "WARNING" not in errors, errors
