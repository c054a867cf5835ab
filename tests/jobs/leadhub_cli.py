"""`python -m tests.jobs.leadhub_cli …`: the leadhub CLI with the jobs commands and the test-only
`ticker` connector, for subprocesses started by the jobs tests."""

from core.cli import app
from core.cli import jobs as cli_jobs  # noqa: F401  (registers worker, scheduler, run, dlq)
from tests.jobs import ticker  # noqa: F401  (registers the ticker connector)

if __name__ == "__main__":
    app()
