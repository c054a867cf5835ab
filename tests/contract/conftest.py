"""The contract tests need the vendors' official clients (`pip install -e '.[dev,contract]'`).

Without them each module skips with a reason; in CI (`LEADHUB_REQUIRE_SERVICES=1`) a missing
client stops the run instead, so the contract suite can never pass by not running.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

CLIENTS = ("hubspot", "simple_salesforce", "mailchimp_marketing", "facebook_business")

if os.environ.get("LEADHUB_REQUIRE_SERVICES") == "1":
    missing = [name for name in CLIENTS if importlib.util.find_spec(name) is None]
    if missing:
        raise pytest.UsageError(
            f"the contract extra is not installed (missing {', '.join(missing)}): "
            "pip install -e '.[dev,contract]'"
        )
