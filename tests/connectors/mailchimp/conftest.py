"""Each test starts with no remembered merge-field check (they are kept per process)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.mailchimp import destination


@pytest.fixture(autouse=True)
def no_remembered_merge_field_checks() -> Iterator[None]:
    destination._merge_checks.clear()
    yield
    destination._merge_checks.clear()
