"""Every end-to-end test is also a conformance check: each request our connectors sent to a
vendor sandbox (those whose sandbox checks its conformance table) must hold to that table."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.sandbox.conformance import Checked, recording


def describe(checked: Checked) -> str:
    where = f"{checked.vendor} {checked.method} {checked.path}"
    return f"{where} ({checked.operation or 'no operation'}): {'; '.join(checked.problems)}"


@pytest.fixture(autouse=True)
def requests_conform() -> Iterator[list[Checked]]:
    """Record the sandboxes' checks during the test; fail it on any request with problems."""
    with recording() as seen:
        yield seen
    bad = [describe(c) for c in seen if c.problems]
    if bad:
        pytest.fail(f"{len(bad)} request(s) broke the vendors' schemas:\n" + "\n".join(bad))
