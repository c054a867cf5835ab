"""A test-only actor that calls a vendor through `core.http` with the shared Redis budget.

Workers import it with `leadhub worker --module tests.jobs.caller`.
"""

from __future__ import annotations

import os

from core.http import HttpClient, budget_for
from core.jobs.broker import declare

RATE, PER_SECONDS = 10, 1.0


@declare
def call_vendor(url: str, calls: int) -> None:
    budget = budget_for(RATE, PER_SECONDS)
    with HttpClient(url, budget=budget, budget_key="vendor:account-1") as client:
        for _ in range(calls):
            client.get("/hit", headers={"X-Worker": str(os.getpid())})
