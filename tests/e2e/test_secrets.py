"""Secrets: with every credential set to a recognisable canary, a full cycle through the CLI at
DEBUG level, with faults injected and one source whose token is refused, leaves the canaries in
no log record, no line on stdout or stderr, no error message and no column of any table."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from core.store.store import Store
from tests.e2e.harness import fast_http, hub_config, sandboxes, write_hub

pytestmark = pytest.mark.e2e
CANARIES = {
    "LH_FB_TOKEN": "SECRET-canary-fb-token-7f3a9e",
    "LH_FB_APP_SECRET": "SECRET-canary-fb-appsecret-91c2d4",
    "LH_FB_VERIFY": "SECRET-canary-fb-verify-0b8e11",
    "LH_FB_REVOKED": "SECRET-canary-fb-revoked-5aa7c3",
    "LH_MC_KEY": "SECRET-canary-mc-key-5d1e77-us6",
    "LH_HOOK_SECRET": "SECRET-canary-hook-secret-3b7d02",
    "LH_HOOK_URL_TOKEN": "SECRET-canary-hook-url-c4f9a8",
}


def dump(store: Store) -> str:
    """Every row of every table, as text."""
    lines = []
    with store.engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                lines.append(f"{table}: {json.dumps(list(row), default=str)}")
    return "\n".join(lines)


def test_no_canary_reaches_a_log_an_error_or_the_database(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from core.cli import app

    fast_http(monkeypatch)
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    options = {
        "facebook_leads": {"access_token": CANARIES["LH_FB_TOKEN"],
                           "app_secret": CANARIES["LH_FB_APP_SECRET"]},
        "mailchimp": {"api_key": CANARIES["LH_MC_KEY"]},
    }  # fmt: skip
    with sandboxes(["facebook_leads", "mailchimp"], options=options, seed=5) as sandbox:
        sandbox.recorder.secret = CANARIES["LH_HOOK_SECRET"]
        mc = {"api_key": "${LH_MC_KEY}"}
        content = hub_config(
            sandbox, ["facebook_leads", "mailchimp"],
            facebook={"access_token": "${LH_FB_TOKEN}", "app_secret": "${LH_FB_APP_SECRET}",
                      "verify_token": "${LH_FB_VERIFY}"},
            mailchimp=mc, mailchimp_scores=mc,
            crm={"secret": "${LH_HOOK_SECRET}",
                 "url": f"{sandbox.hook_url}?token=${{LH_HOOK_URL_TOKEN}}"},
        )  # fmt: skip
        revoked = {**content["sources"]["facebook"], "access_token": "${LH_FB_REVOKED}"}
        content["sources"]["facebook_revoked"] = revoked
        hub = write_hub(tmp_path, content)
        db_url = f"sqlite:///{tmp_path / 'leadhub.db'}"
        sandbox.faults.script("server_error", "drop", "truncate", "rate_limit", "timeout")
        sandbox.faults.configure(server_error=0.05, drop=0.03, truncate=0.03, rate_limit=0.05)

        caplog.set_level(logging.DEBUG)
        monkeypatch.setattr(logging.getLogger("leadhub"), "handlers", [])  # the CLI adds its own
        runner = CliRunner()
        base = ["--config", str(hub), "--database-url", db_url, "--log-level", "DEBUG"]
        results = []
        for command in (["sync"], ["sync"], ["score"], ["push"], ["push"], ["quarantine"],
                        ["status"]):  # fmt: skip
            logging.getLogger("leadhub").handlers.clear()  # a fresh CLI handler on this stderr
            results.append(runner.invoke(app, [*base, *command]))
        captured = capfd.readouterr()

    output = "\n".join(r.output + (r.stderr if r.stderr_bytes is not None else "")
                       for r in results)  # fmt: skip
    records = caplog.records
    logged = "\n".join(
        f"{r.getMessage()}\n{r.exc_text or ''}"
        + (logging.Formatter().formatException(r.exc_info) if r.exc_info else "")
        for r in records
    )
    store = Store(db_url)
    database = dump(store)
    store.close()

    # The cycle really ran, failed where it should, and logged at DEBUG.
    assert sandbox.faults.injected and sandbox.recorder.values and sandbox.recorder.refused == 0
    assert "facebook_revoked" in output and results[0].exit_code == 1
    assert any(r.levelno == logging.DEBUG and r.name.startswith("leadhub") for r in records)
    assert "DEBUG leadhub.http" in output and "retrying in" in output  # the CLI's own log lines
    assert "facebook_revoked" in database and "failed" in database
    assert "\nquarantine: " in database  # quarantined payloads are in the dump too
    for name, value in CANARIES.items():
        secret = value.removesuffix("-us6")
        assert secret not in logged, f"{name} in a log record"
        assert secret not in output, f"{name} in the CLI output"
        assert secret not in captured.out + captured.err, f"{name} on stdout/stderr"
        assert secret not in database, f"{name} in the database"
