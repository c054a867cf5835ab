"""Lead search (`q=`) through the search documents and the trigram index answers exactly what a
substring filter over every lead answers: the same leads, in the list's order, with the same
count and pages, also after leads change, merge and go, whether the matches are few (listed by
id) or many (probed in the list's order: `FEW` lowered to 2 here). With another filter, a
search of many matches counts up to `FEW + 1` only and says so (`total_exact`), its pages still
exact. The oracle is a plain Python filter over the stored leads, folding case as each
database's lower() does."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from core.records import LeadRecord
from core.store import db, search
from core.store.ingest import IDENTITY, LEAD, Ingest
from core.store.store import Store
from core.web.app import create_app
from tests.web import seed
from tests.web.conftest import TOKEN, Client, settings

EXTRA = [  # (external id, email, first name, last name, company)
    ("x1", "ann.o'hara@Example.org", "Ann", "O'Hara", "ACME Widgets"),
    ("x2", "bob@widgets.example", "Bob", None, "Percent 100% Ltd"),
    ("x3", "carol_k@snake.example", None, "Under_Score", "Snake_Case Inc"),
    ("x4", "dave@zz.example", "Dave", "Zed", None),
    ("x5", "eve@ab.example", "Évelyne", "Abbott", 'Quote "Co"'),
    ("x6", "frank@slash.example", "Frank", "Slash", "A/B Testing"),
    ("x7", "zoe@umlaut.example", "ZOË", "Ångström", "Straße GmbH"),
]

QUERIES = [
    "a", "Z", "_", "%", "/", "ab", "AB", "zz", "e.", "%1", "100%", "_s", "ann", "ANN O",
    "o'hara", "n o'h", "widget", "WIDGETS", "person1", "person1 test", "company 1",
    "acme.example", "snake_case", "under_", "a/b", '"co"', "quote \"", "lead1", "@zz",
    "nothing-matches-this", "VELYNE", "Abbott", "a%b", "x_x", "évelyne", "ÉVELYNE", "Évelyne",
    "zoë", "ZOË", "ångström", "Ångström", "straße", "STRASSE", "ë", "e\x1fz", "x\x1f",
]  # fmt: skip


def fold(text: str, dialect: str) -> str:
    """Lower case as the database's lower() does: every letter on PostgreSQL (a UTF-8 database),
    A-Z only on SQLite."""
    if dialect == "sqlite":
        return text.translate(str.maketrans(string.ascii_uppercase, string.ascii_lowercase))
    return text.lower()


def oracle(lead: dict[str, Any], needle: str, dialect: str) -> bool:
    """A case-insensitive substring of the email, first or last name, full name or company
    (the full name exists only when both names do)."""
    first, last = lead["first_name"], lead["last_name"]
    full = f"{first} {last}" if first is not None and last is not None else None
    fields = (lead["email"], first, last, lead["company"], full)
    return any(f is not None and fold(needle, dialect) in fold(f, dialect) for f in fields)


def every_lead(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT id, email, first_name, last_name, company FROM lead"
        ).all()
    return [r._asdict() for r in rows]


def listed(client: Client, **params: Any) -> tuple[int, list[int]]:
    response = client.get("/api/leads", params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    body = response.json()
    return body["total"], [item["id"] for item in body["items"]]


@pytest.fixture(params=["few", "many"])
def searched(
    store: Store, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> tuple[Store, Client]:
    if request.param == "many":
        monkeypatch.setattr(search, "FEW", 2)
    seed.seed(store)
    extra = [
        LeadRecord(source="crm", external_id=x, email=e, first_name=f, last_name=la, company=c)
        for x, e, f, la, c in EXTRA
    ]
    store.save_page("crm", "more", extra, None)
    app = create_app(store, seed.hub(tmp_path), settings())
    return store, Client(app, {"Authorization": f"Bearer {TOKEN}"})


def assert_same_as_oracle(store: Store, client: Client, needle: str) -> None:
    leads = {lead["id"]: lead for lead in every_lead(store)}
    for sort in ("-total", "email"):
        _, everyone = listed(client, sort=sort)
        expected = [i for i in everyone if oracle(leads[i], needle.strip(), store.dialect)]
        total, found = listed(client, q=needle, sort=sort)
        assert (total, found) == (len(expected), expected), (needle, sort)


def test_the_store_has_the_search_index(searched: tuple[Store, Client]) -> None:
    store, _ = searched
    with store.engine.connect() as conn:
        assert search.indexed(conn)


@pytest.mark.parametrize("needle", QUERIES)
def test_search_equals_a_substring_filter(searched: tuple[Store, Client], needle: str) -> None:
    store, client = searched
    assert_same_as_oracle(store, client, needle)


def test_search_pages_by_offset_and_cursor(searched: tuple[Store, Client]) -> None:
    _, client = searched
    total, whole = listed(client, q="example")
    assert total == len(whole) == 19  # every lead's email
    pages = [listed(client, q="example", limit=4, offset=o)[1] for o in range(0, total, 4)]
    by_offset = [i for page in pages for i in page]
    assert by_offset == whole
    by_cursor: list[int] = []
    after: str | None = None
    while True:
        params = {"q": "example", "limit": 5, **({"after": after} if after else {})}
        body = client.get("/api/leads", params=params).json()
        by_cursor += [item["id"] for item in body["items"]]
        after = body["next"]
        if after is None:
            break
    assert by_cursor == whole


def test_search_follows_updates_merges_and_new_leads(searched: tuple[Store, Client]) -> None:
    store, client = searched
    renamed = LeadRecord(
        source="crm", external_id="x4", email="dave@zz.example", first_name="David",
        last_name="Zimmer", company="Quokka Labs",
    )  # fmt: skip
    fresh = LeadRecord(source="crm", external_id="x7", email="gwen@new.example", company="Quokkas")
    store.save_page("crm", "changes", [renamed, fresh], None)
    for needle in ("quokka", "david zim", "dave zed", "zed", "gwen"):
        assert_same_as_oracle(store, client, needle)
    bob = store.lead_by_email("bob@widgets.example")
    ann = store.lead_by_email("ann.o'hara@example.org")
    assert bob is not None and ann is not None
    with store.begin() as conn:
        Ingest(conn).merge_leads(int(bob["id"]), int(ann["id"]))
    assert listed(client, q="percent 100%") == (0, [])
    for needle in ("bob@", "percent", "widgets", "ann", "o'hara"):
        assert_same_as_oracle(store, client, needle)
    gwen = store.lead_by_email("gwen@new.example")
    assert gwen is not None
    with store.begin() as conn:  # a lead deleted outright
        conn.execute(sa.delete(IDENTITY).where(IDENTITY.c.lead_id == gwen["id"]))
        conn.execute(sa.delete(LEAD).where(LEAD.c.id == gwen["id"]))
    for needle in ("quokka", "gwen", "new.example"):
        assert_same_as_oracle(store, client, needle)
    assert documents(store) == expected_documents(store)


def documents(store: Store) -> dict[int, str]:
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(f"SELECT lead_id, doc FROM {search.TEXT_TABLE}").all()
    return {int(i): str(doc) for i, doc in rows}


def expected_documents(store: Store) -> dict[int, str]:
    """Each lead's document from scratch: email, name ("first last" when both, else the one
    there is) and company, folded, joined by char 31."""
    found = {}
    for lead in every_lead(store):
        first, last = lead["first_name"], lead["last_name"]
        name = f"{first} {last}" if first is not None and last is not None else first or last
        parts = (lead["email"] or "", name or "", lead["company"] or "")
        found[int(lead["id"])] = fold("\x1f".join(parts), store.dialect)
    return found


def test_the_documents_are_every_lead_s_from_scratch(searched: tuple[Store, Client]) -> None:
    store, _ = searched
    assert documents(store) == expected_documents(store)
    assert len(documents(store)) == len(every_lead(store)) == 19


def test_without_the_index_search_scans_to_the_same_answer(store: Store, tmp_path: Path) -> None:
    """A store whose engine could not build the index (downgraded here) answers alike."""
    with store.begin() as conn:
        cfg = db.alembic_config(store.engine)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0006_activity_signature")
        # the later revisions' score column, which the scorer writes (the downgrade took it)
        conn.execute(sa.text("ALTER TABLE score ADD COLUMN inputs TEXT"))
    seed.seed(store)
    app = create_app(store, seed.hub(tmp_path), settings())
    client = Client(app, {"Authorization": f"Bearer {TOKEN}"})
    for needle in ("company 1", "PERSON1", "_", "acme.example", "nothing"):
        assert_same_as_oracle(store, client, needle)


# -- a bounded count: many matches and another filter --------------------------------------------


@pytest.fixture
def bounded(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Store, Client]:
    """The seeded store with `FEW` lowered to 5: a filtered search stops counting at 6."""
    monkeypatch.setattr(search, "FEW", 5)
    monkeypatch.setattr(search, "SPARSE", 5)  # 12 matches: not sparse, counted up to the bound
    seed.seed(store)
    app = create_app(store, seed.hub(tmp_path), settings())
    return store, Client(app, {"Authorization": f"Bearer {TOKEN}"})


def filtered_oracle(client: Client, store: Store, needle: str, tiers: set[str]) -> list[int]:
    """The leads in `tiers` whose fields contain `needle`, in the unsearched list's order."""
    leads = {lead["id"]: lead for lead in every_lead(store)}
    everyone = client.get("/api/leads", params={"limit": 500}).json()["items"]
    return [
        item["id"]
        for item in everyone
        if item["tier"] in tiers and oracle(leads[item["id"]], needle, store.dialect)
    ]


def test_a_common_search_with_a_broad_filter_counts_up_to_a_bound(
    bounded: tuple[Store, Client],
) -> None:
    store, client = bounded
    expected = filtered_oracle(client, store, "acme", {"warm", "cold"})
    assert len(expected) == 8  # leads 4-11: every email is @acme.example, 12 matches > FEW
    params = {"q": "acme", "tier": ["warm", "cold"]}
    body = client.get("/api/leads", params={**params, "limit": 500}).json()
    assert (body["total"], body["total_exact"]) == (6, False)  # FEW + 1: at least 6
    assert [item["id"] for item in body["items"]] == expected
    # past the bound, a page by offset still holds the leads there
    deep = client.get("/api/leads", params={**params, "limit": 3, "offset": 6}).json()
    assert [item["id"] for item in deep["items"]] == expected[6:]
    walked: list[int] = []
    after: str | None = None
    while True:
        page = {**params, "limit": 3, **({"after": after} if after else {})}
        body = client.get("/api/leads", params=page).json()
        walked += [item["id"] for item in body["items"]]
        after = body["next"]
        if after is None:
            break
    assert walked == expected


@pytest.mark.parametrize(
    ("needle", "tiers"),
    [
        ("company 1", {"cold"}),  # 3 matches (1, 10, 11): listed by id
        ("acme", {"hot"}),  # 12 matches, 4 of them hot: under the bound
    ],
)
def test_a_rare_search_or_a_narrow_filter_stays_exact(
    bounded: tuple[Store, Client], needle: str, tiers: set[str]
) -> None:
    store, client = bounded
    expected = filtered_oracle(client, store, needle, tiers)
    params = {"q": needle, "tier": sorted(tiers), "limit": 500}
    body = client.get("/api/leads", params=params).json()
    assert (body["total"], body["total_exact"]) == (len(expected), True)
    assert [item["id"] for item in body["items"]] == expected


def test_sparse_matches_with_a_broad_filter_are_counted_from_the_documents(
    bounded: tuple[Store, Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    """More matches than listed by id but, as SQLite counts them on the way, few enough that
    the filtered count goes from the documents: exact. (PostgreSQL finds the matches without
    counting them, and counts up to the bound.)"""
    store, client = bounded
    monkeypatch.setattr(search, "SPARSE", 20)
    expected = filtered_oracle(client, store, "acme", {"warm", "cold"})
    params = {"q": "acme", "tier": ["warm", "cold"], "limit": 500}
    body = client.get("/api/leads", params=params).json()
    want = (len(expected), True) if store.dialect == "sqlite" else (6, False)
    assert (body["total"], body["total_exact"]) == want
    assert [item["id"] for item in body["items"]] == expected
    params = {"q": "company", "channel": "referral", "limit": 500}  # lead conditions, not tiers
    body = client.get("/api/leads", params=params).json()
    with store.engine.connect() as conn:
        channels = dict(conn.exec_driver_sql("SELECT id, channel FROM lead").all())
    referred = [
        lead["id"]
        for lead in every_lead(store)
        if channels[lead["id"]] == "referral" and oracle(lead, "company", store.dialect)
    ]
    assert referred
    if store.dialect == "sqlite":
        assert (body["total"], body["total_exact"]) == (len(referred), True)
    assert sorted(item["id"] for item in body["items"]) == sorted(referred)


def test_a_common_search_alone_stays_exact(bounded: tuple[Store, Client]) -> None:
    _, client = bounded
    body = client.get("/api/leads", params={"q": "acme", "limit": 500}).json()
    assert (body["total"], body["total_exact"]) == (12, True)
    plain = client.get("/api/leads", params={"tier": "cold"}).json()
    assert (plain["total"], plain["total_exact"]) == (4, True)


def test_the_dashboard_shows_a_bounded_count_and_pages_past_it(
    bounded: tuple[Store, Client],
) -> None:
    store, client = bounded
    expected = filtered_oracle(client, store, "acme", {"warm", "cold"})
    emails = {lead["id"]: lead["email"] for lead in every_lead(store)}
    params = {"q": "acme", "tier": ["warm", "cold"], "size": 3}
    first = client.get("/leads", params=params)
    assert first.status_code == 200, first.text
    assert '<h2 id="lead-count">5+ leads' in first.text  # more than FEW
    assert "page 1<" in first.text and 'rel="next"' in first.text
    last = client.get("/leads", params={**params, "page": 3})  # leads 7-8, past the bound
    assert last.status_code == 200, last.text
    shown = [emails[i] for i in expected[6:]]
    assert all(e in last.text for e in shown) and 'rel="next"' not in last.text
    assert client.get("/leads", params={**params, "page": 4}).status_code == 422
    exact = client.get("/leads", params={"q": "acme", "tier": "hot"})
    assert '<h2 id="lead-count">4 leads' in exact.text
