"""A real browser (Debian chromium, headless) on the dashboard over real HTTP.

Loads the overview with basic-auth credentials in the URL, checks the top-leads table and the
charts, opens a lead page from its link, and saves screenshots under the test's tmp_path.
Skips without chromium (`apt-get install chromium`); fails instead in CI, which installs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest

from connectors.sandbox.server import serve
from core.store.store import Store
from core.web.app import create_app
from tests.web import seed
from tests.web.conftest import PASSWORD, USER, settings

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


class Dom(HTMLParser):
    """What the checks need from a dumped DOM: ids, tag counts under each id, and links."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.inside: dict[str, Counter[str]] = {}
        self._open: list[str | None] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(str(found["id"]))
            self.inside[str(found["id"])] = Counter()
        for element in filter(None, self._open):
            self.inside[element][tag] += 1
        if tag == "a" and found.get("href"):
            self.links.append(str(found["href"]))
        if tag not in ("br", "img", "input", "meta", "link", "rect", "circle", "line", "path"):
            self._open.append(found.get("id"))

    def handle_endtag(self, tag: str) -> None:
        if self._open and tag not in ("rect", "circle", "line", "path"):
            self._open.pop()


@pytest.fixture
def chromium() -> str:
    if CHROMIUM is None:
        reason = "the browser test needs chromium: apt-get install -y chromium"
        if os.environ.get("LEADHUB_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason} (LEADHUB_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(reason)
    return CHROMIUM


def browse(chromium: str, tmp_path: Path, url: str, *, screenshot: Path | None = None) -> str:
    """The DOM of `url` after loading, or (with `screenshot`) a PNG of the page."""
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    args = [chromium, *FLAGS, f"--user-data-dir={profile}"]
    if screenshot is None:
        args += ["--dump-dom", url]
    else:
        args += [f"--screenshot={screenshot}", "--window-size=1280,1900", url]
    done = subprocess.run(args, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_dashboard_in_a_real_browser(chromium: str, tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'leadhub.db'}")
    seed.seed(store)
    app = create_app(store, seed.hub(tmp_path), settings())
    with serve(app) as base_url:
        host = base_url.removeprefix("http://")
        signed_in = f"http://{quote(USER, safe='')}:{quote(PASSWORD, safe='')}@{host}"

        refused = browse(chromium, tmp_path, f"{base_url}/")
        assert "top-leads" not in refused  # the 401's basic-auth prompt goes unanswered

        page = Dom(browse(chromium, tmp_path, f"{signed_in}/"))
        assert {"top-leads", "chart-tiers", "chart-scores", "chart-conversion"} <= page.ids
        assert page.inside["top-leads"]["tr"] == 1 + 12  # the header row and every lead
        assert page.inside["chart-scores"]["rect"] == 10  # one column per 10-point bracket
        assert page.inside["chart-conversion"]["rect"] == 10
        assert page.inside["chart-tiers"]["div"] == 3
        assert page.inside["channel-table"]["tr"] == 1 + 2
        browse(chromium, tmp_path, f"{signed_in}/", screenshot=tmp_path / "dashboard.png")

        changed = store.lead_by_email("lead4@acme.example")  # scored twice: two history points
        assert changed is not None
        lead_link = f"/leads/{changed['id']}"
        assert lead_link in page.links
        lead = Dom(browse(chromium, tmp_path, f"{signed_in}{lead_link}"))
        assert {"lead-name", "model-default", "chart-history-default"} <= lead.ids
        assert lead.inside["chart-history-default"]["circle"] == 2
        assert lead.inside["model-default"]["td"] > 4  # the ledger's lines and its total
        browse(chromium, tmp_path, f"{signed_in}{lead_link}", screenshot=tmp_path / "lead.png")
    store.close()
    for shot in ("dashboard.png", "lead.png"):
        data = (tmp_path / shot).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 20_000, shot
