"""The CSV source: headers and mapping, file quirks, quarantine, paging, resume and restart."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from connectors.base import Invalid, Item, Page, SourceContext, get_connector
from connectors.csv import CsvConnector, CsvSettings
from connectors.csv.source import CsvStream
from core.errors import ConfigError
from core.records import ActivityRecord, LeadRecord, OutcomeRecord
from core.store.store import Store
from tests.conformance.suite import SourceCase, check_source

EXAMPLES = Path(__file__).resolve().parents[3] / "connectors" / "csv" / "examples"


def stream(tmp_path: Path, kind: str = "leads", **settings: Any) -> CsvStream:
    """The `kind` stream of a source named `crm` whose files live in `tmp_path`."""
    settings.setdefault(kind, f"{kind}.csv")
    source = CsvConnector().source(CsvSettings(**settings), SourceContext("crm", tmp_path))
    [found] = [s for s in source.streams() if s.name == kind]
    return found


def write(tmp_path: Path, text: str, name: str = "leads.csv", **kw: Any) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(kw.get("encoding", "utf-8")))
    return path


def items(s: CsvStream, cursor: dict[str, Any] | None = None) -> list[Item]:
    return [item for page in s.read(cursor) for item in page.items]


def only_invalid(found: list[Item]) -> list[Invalid]:
    return [i for i in found if isinstance(i, Invalid)]


# -- defaults and mapping -------------------------------------------------------------------------


def test_default_headers_fill_the_lead_and_extra_columns_go_to_custom(tmp_path: Path) -> None:
    write(
        tmp_path,
        "external_id,email,first_name,company_size,updated_at,linkedin,budget\n"
        "7,Ann@Acme.com ,Ann,250,2026-09-01T10:00:00+02:00,https://li/ann,\n",
    )
    [lead] = items(stream(tmp_path))
    assert isinstance(lead, LeadRecord)
    assert (lead.source, lead.external_id, lead.email) == ("crm", "7", "ann@acme.com")
    assert lead.company_size == 250
    assert lead.updated_at == datetime(2026, 9, 1, 8, tzinfo=UTC)
    assert lead.custom == {"linkedin": "https://li/ann"}  # the empty budget cell is dropped


def test_a_leads_file_without_ids_is_keyed_by_the_normalized_email(tmp_path: Path) -> None:
    write(tmp_path, "email,channel\n  Bo@X.io ,referral\nann@x.io,\n")
    first, second = items(stream(tmp_path, channel="facebook_ads"))
    assert isinstance(first, LeadRecord) and isinstance(second, LeadRecord)
    assert (first.external_id, first.channel) == ("bo@x.io", "referral")
    assert (second.external_id, second.channel) == ("ann@x.io", "facebook_ads")


def test_activities_get_properties_and_a_stable_id_when_the_file_has_none(tmp_path: Path) -> None:
    write(
        tmp_path,
        "lead,type,occurred_at,url,campaign\n"
        "C-1,page_viewed,2026-10-01T09:00:00Z,https://x.io/pricing,\n"
        "ann@x.io,email_opened,2026-10-02T09:00:00Z,,q4\n",
        "activities.csv",
    )
    s = stream(tmp_path, "activities")
    first, second = items(s)
    assert isinstance(first, ActivityRecord) and isinstance(second, ActivityRecord)
    assert (first.lead, first.type) == ("C-1", "page_viewed")
    assert first.properties == {"url": "https://x.io/pricing"}
    assert (second.lead, second.properties) == ("ann@x.io", {"campaign": "q4"})
    assert first.external_id != second.external_id
    assert [i.external_id for i in items(s) if isinstance(i, ActivityRecord)] == [
        first.external_id,
        second.external_id,
    ]  # a replay gives the same ids, so it upserts instead of duplicating


def test_outcomes_are_keyed_by_the_lead_when_the_file_has_no_id(tmp_path: Path) -> None:
    write(
        tmp_path,
        'lead,status,closed_at,amount\nann@x.io,Won,2026-11-01,"12,500.50"\n',
        "outcomes.csv",
    )
    [outcome] = items(stream(tmp_path, "outcomes"))
    assert isinstance(outcome, OutcomeRecord)
    assert (outcome.external_id, outcome.status, outcome.amount) == ("ann@x.io", "won", 12500.5)


def test_columns_map_headers_onto_fields_and_plain_headers_match_loosely(tmp_path: Path) -> None:
    write(tmp_path, "Contact ID,E-mail,First Name,JOB TITLE,Notes\n9,a@x.io,Ann,CTO,call back\n")
    [lead] = items(stream(tmp_path, columns={"Contact ID": "external_id", "E-mail": "email"}))
    assert isinstance(lead, LeadRecord)
    assert (lead.external_id, lead.email, lead.first_name, lead.job_title) == (
        "9",
        "a@x.io",
        "Ann",
        "CTO",
    )
    assert lead.custom == {"Notes": "call back"}


def test_skip_values_count_as_missing(tmp_path: Path) -> None:
    write(tmp_path, "email,industry,company_size,budget\na@x.io,Select,N/A,select\n")
    [lead] = items(stream(tmp_path, skip_values=["Select", "n/a"]))
    assert isinstance(lead, LeadRecord)
    assert (lead.industry, lead.company_size, lead.custom) == (None, None, {})


# -- file quirks ----------------------------------------------------------------------------------


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_header(tmp_path: Path) -> None:
    write(tmp_path, "\ufeffexternal_id,email,city\n1,a@x.io,Zürich\n")
    [lead] = items(stream(tmp_path))
    assert isinstance(lead, LeadRecord) and (lead.external_id, lead.city) == ("1", "Zürich")


def test_crlf_lines_and_a_trailing_delimiter_on_every_line(tmp_path: Path) -> None:
    write(tmp_path, "external_id,email,country,\r\n1,a@x.io,US,\r\n2,b@x.io,GB,\r\n")
    found = items(stream(tmp_path))
    assert [(i.external_id, i.country) for i in found if isinstance(i, LeadRecord)] == [
        ("1", "US"),
        ("2", "GB"),
    ]
    assert all(isinstance(i, LeadRecord) and i.custom == {} for i in found)


def test_other_delimiter_and_encoding(tmp_path: Path) -> None:
    write(tmp_path, "email;city\na@x.io;Köln\n", encoding="latin-1")
    [lead] = items(stream(tmp_path, delimiter=";", encoding="latin-1"))
    assert isinstance(lead, LeadRecord) and lead.city == "Köln"


def test_rows_with_bytes_not_in_the_encoding_are_quarantined_and_the_rest_imports(
    tmp_path: Path,
) -> None:
    # A UTF-8 export with one row pasted in from a Latin-1 tool: 0xF6 is "ö" in Latin-1 and
    # cannot start a UTF-8 sequence.
    path = tmp_path / "leads.csv"
    path.write_bytes(
        b"email,city\n"
        + "a@x.io,K\u00f6ln\n".encode()
        + "b@x.io,K\u00f6ln\n".encode("latin-1")
        + b"c@x.io,Bonn\n"
    )
    found = items(stream(tmp_path))
    assert [(i.email, i.city) for i in found if isinstance(i, LeadRecord)] == [
        ("a@x.io", "K\u00f6ln"),
        ("c@x.io", "Bonn"),
    ]
    [bad] = only_invalid(found)
    assert bad.record_ref == "leads.csv:3"
    assert bad.reason == (
        "leads.csv:3: row: bytes 0xf6 are not valid utf-8 (see `sources.crm.encoding`)"
    )
    assert bad.raw == "b@x.io,K\\xf6ln"


def test_a_header_not_in_the_configured_encoding_is_a_config_error(tmp_path: Path) -> None:
    write(tmp_path, "email,stadt_\u00f6\na@x.io,K\u00f6ln\n", encoding="latin-1")
    with pytest.raises(
        ConfigError, match=r"sources\.crm\.leads: .*header is not valid utf-8.*encoding"
    ):
        items(stream(tmp_path))


# -- bad rows -------------------------------------------------------------------------------------


def test_bad_rows_are_quarantined_with_line_and_reason_and_the_rest_imports(tmp_path: Path) -> None:
    write(
        tmp_path,
        "external_id,email,company_size,updated_at\n"
        "1,a@x.io,10,2026-10-01\n"
        "2,not-an-email,10,2026-10-01\n"
        "3,c@x.io,lots,2026-10-01\n"
        "\n"
        '4,d@x.io,"1\n0",2026-10-01\n'  # a quoted cell spanning two lines
        "5,e@x.io,10,yesterday\n"
        "6,f@x.io\n"
        "7,g@x.io,10,2026-10-01,surplus\n"
        ",,10,2026-10-01\n"
        "9,i@x.io,10,2026-10-01\n",
    )
    found = items(stream(tmp_path))
    good = [i.external_id for i in found if isinstance(i, LeadRecord)]
    assert good == ["1", "9"]
    reasons = {i.record_ref: i.reason for i in only_invalid(found)}
    assert reasons == {
        "leads.csv:3": "leads.csv:3: email: not an email address: 'not-an-email'",
        "leads.csv:4": "leads.csv:4: company_size: not a number: 'lots'",
        "leads.csv:6": "leads.csv:6: company_size: not a number: '1\\n0'",
        "leads.csv:8": "leads.csv:8: updated_at: not an ISO 8601 date/time: 'yesterday'",
        "leads.csv:9": "leads.csv:9: row: 2 cells where the header has 4",
        "leads.csv:10": "leads.csv:10: row: 5 cells where the header has 4",
        "leads.csv:11": "leads.csv:11: external_id: missing, and no email to use instead",
    }
    raws = {i.record_ref: i.raw for i in only_invalid(found)}
    assert raws["leads.csv:3"] == "2,not-an-email,10,2026-10-01"
    assert raws["leads.csv:6"] == '4,d@x.io,"1\n0",2026-10-01'


def test_a_row_the_csv_reader_refuses_costs_only_that_row(tmp_path: Path) -> None:
    write(tmp_path, "email,notes\na@x.io,ok\nb@x.io," + "x" * 200_000 + "\nc@x.io,fine\n")
    found = items(stream(tmp_path))
    assert [i.email for i in found if isinstance(i, LeadRecord)] == ["a@x.io", "c@x.io"]
    [bad] = only_invalid(found)
    assert bad.reason == "leads.csv:3: row: field larger than field limit (131072)"
    assert bad.raw.startswith("b@x.io,xxx")


def test_activity_rows_with_unknown_type_or_missing_values_are_quarantined(tmp_path: Path) -> None:
    write(
        tmp_path,
        "external_id,lead,type,occurred_at\n"
        "a1,C-1,page_viewed,2026-10-01T00:00:00Z\n"
        "a2,C-1,visited,2026-10-01T00:00:00Z\n"
        "a3,C-1,,2026-10-01T00:00:00Z\n"
        "a4,,page_viewed,2026-10-01T00:00:00Z\n",
        "activities.csv",
    )
    found = items(stream(tmp_path, "activities"))
    assert [i.external_id for i in found if isinstance(i, ActivityRecord)] == ["a1"]
    reasons = [i.reason for i in only_invalid(found)]
    assert reasons[0].startswith("activities.csv:3: type: unknown activity type 'visited'")
    assert reasons[1:] == [
        "activities.csv:4: type: Field required",
        "activities.csv:5: lead: Field required",
    ]


def test_a_header_without_a_required_column_is_a_config_error(tmp_path: Path) -> None:
    write(tmp_path, "lead,kind,occurred_at\nC-1,page_viewed,2026-10-01\n", "activities.csv")
    where = r"sources\.crm\.activities: .*activities\.csv"
    with pytest.raises(ConfigError, match=rf"{where} has no type column \(header: lead, kind"):
        items(stream(tmp_path, "activities"))
    write(tmp_path, "first_name,company\nAnn,Acme\n")
    with pytest.raises(ConfigError, match="has no external_id or email column"):
        items(stream(tmp_path))


def test_two_columns_for_one_field_is_a_config_error(tmp_path: Path) -> None:
    write(tmp_path, "email,E-mail\na@x.io,b@x.io\n")
    with pytest.raises(ConfigError, match="several columns map to email"):
        items(stream(tmp_path, columns={"E-mail": "email"}))


def test_a_missing_file_is_a_config_error_naming_setting_and_path(tmp_path: Path) -> None:
    s = stream(tmp_path, "outcomes", outcomes="exports/won.csv")
    with pytest.raises(ConfigError) as err:
        items(s)
    assert "sources.crm.outcomes" in str(err.value)
    assert str(tmp_path / "exports" / "won.csv") in str(err.value)


# -- paging, resume, restart ----------------------------------------------------------------------


def lines_file(tmp_path: Path, count: int) -> Path:
    rows = "".join(f"{n},p{n}@x.io\n" for n in range(1, count + 1))
    return write(tmp_path, "external_id,email\n" + rows)


def ids(pages: list[Page]) -> list[str]:
    return [i.external_id for p in pages for i in p.items if isinstance(i, LeadRecord)]


def test_pages_hold_page_size_rows_and_end_on_the_last_line_read(tmp_path: Path) -> None:
    lines_file(tmp_path, 5)
    pages = list(stream(tmp_path, page_size=2).read(None))
    assert [len(p.items) for p in pages] == [2, 2, 1]
    assert [p.cursor and p.cursor["line"] for p in pages] == [3, 5, 6]


def test_each_page_says_how_many_rows_are_left_for_the_time_left(tmp_path: Path) -> None:
    lines_file(tmp_path, 5)  # a header and 5 rows: 2 + 2 + 1 rows read, 3, 1 and 0 left
    assert [p.left for p in stream(tmp_path, page_size=2).read(None)] == [3, 1, 0]
    write(tmp_path, "email\na@x.com\nb@x.com")  # no newline after the last row
    assert [p.left for p in stream(tmp_path, page_size=1).read(None)] == [1, 0]


def test_resuming_from_any_page_cursor_loses_and_repeats_nothing(tmp_path: Path) -> None:
    lines_file(tmp_path, 7)
    s = stream(tmp_path, page_size=3)
    pages = list(s.read(None))
    assert ids(pages) == [str(n) for n in range(1, 8)]
    for index, page in enumerate(pages):
        rest = list(s.read(page.cursor))
        assert ids(pages[: index + 1]) + ids(rest) == ids(pages)
    assert list(s.read(pages[-1].cursor)) == []


def test_rows_appended_after_the_cursor_are_read_after_a_restart(tmp_path: Path) -> None:
    path = lines_file(tmp_path, 3)
    s = stream(tmp_path)
    [page] = list(s.read(None))
    with path.open("a", encoding="utf-8") as handle:
        handle.write("4,p4@x.io\n")
    # The file changed: it is read again from the top (upserts make the repeats harmless).
    assert ids(list(s.read(page.cursor))) == ["1", "2", "3", "4"]


def test_a_replaced_file_of_the_same_size_and_time_restarts(tmp_path: Path) -> None:
    path = lines_file(tmp_path, 3)
    s = stream(tmp_path)
    [page] = list(s.read(None))
    stat = path.stat()
    write(tmp_path, path.read_text().replace("p2@", "q2@"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = [i for p in s.read(page.cursor) for i in p.items if isinstance(i, LeadRecord)]
    assert [i.email for i in again] == ["p1@x.io", "q2@x.io", "p3@x.io"]


def test_a_cursor_without_a_fingerprint_reads_from_the_top(tmp_path: Path) -> None:
    lines_file(tmp_path, 2)
    assert ids(list(stream(tmp_path).read({"line": 2}))) == ["1", "2"]


# -- settings and registration ----------------------------------------------------------------


def test_settings_reject_a_source_without_files_and_bad_options() -> None:
    with pytest.raises(ValidationError, match="at least one of leads, activities, outcomes"):
        CsvSettings()
    with pytest.raises(ValidationError, match="delimiter"):
        CsvSettings(leads=Path("l.csv"), delimiter=";;")
    with pytest.raises(ValidationError, match="unknown encoding"):
        CsvSettings(leads=Path("l.csv"), encoding="utf-9")
    with pytest.raises(ValidationError, match="colums"):
        CsvSettings.model_validate({"leads": "l.csv", "colums": {}})


def test_only_configured_files_are_streams_and_paths_resolve_against_the_hub_dir(
    tmp_path: Path,
) -> None:
    settings = CsvSettings(activities=Path("data/a.csv"), outcomes=tmp_path / "o.csv")
    source = get_connector("csv")().source(settings, SourceContext("web", tmp_path / "hub"))
    assert [(s.name, s.path) for s in source.streams()] == [
        ("activities", tmp_path / "hub" / "data" / "a.csv"),
        ("outcomes", tmp_path / "o.csv"),
    ]


# -- the example files ----------------------------------------------------------------------------


def example_source() -> Any:
    settings = CsvSettings(
        leads=Path("leads.csv"),
        activities=Path("activities.csv"),
        outcomes=Path("outcomes.csv"),
        page_size=25,
    )
    return CsvConnector().source(settings, SourceContext("crm", EXAMPLES))


def test_the_example_files_pass_the_conformance_suite(store: Store) -> None:
    case = SourceCase("crm", example_source, cursor_order=lambda c: c["line"], expect_quarantined=2)
    check_source(store, case)
    with store.engine.connect() as conn:
        emails = conn.execute(sa.text("SELECT count(DISTINCT email) FROM lead")).scalar()
    # Two rows repeat a person with the email typed differently: they join that person's lead.
    assert emails == store.count("lead") == 40
