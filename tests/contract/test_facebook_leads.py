"""Meta's official `facebook-business` SDK (26.0.3) against our Lead Ads sandbox, over HTTP.

Nothing of the SDK is changed but its host (`FacebookSession.GRAPH`, the one place the SDK names
graph.facebook.com). Where the SDK and the sandbox disagree, the sandbox is wrong. The SDK's typed
objects (`LeadgenForm`, `Lead`) and its `FacebookRequestError` are the oracle; the conformance
table of the sandbox is held against the SDK's generated classes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from connectors.facebook_leads.client import FORM_FIELDS as CONNECTOR_FORM_FIELDS
from connectors.facebook_leads.client import LEAD_FIELDS as CONNECTOR_LEAD_FIELDS
from connectors.facebook_leads.sandbox import conformance
from connectors.facebook_leads.sandbox.app import (
    ACCESS_TOKEN,
    APP_SECRET,
    MOUNT_PREFIX,
    Fault,
    GraphSandbox,
    create_app,
)
from connectors.facebook_leads.sandbox.world import PAGE_ID
from connectors.facebook_leads.settings import FacebookLeadsSettings
from connectors.sandbox.conformance import recording
from connectors.sandbox.server import serve
from connectors.sandbox.world import World

facebook_business = pytest.importorskip("facebook_business")

from facebook_business.adobjects.lead import Lead  # noqa: E402
from facebook_business.adobjects.leadgenform import LeadgenForm  # noqa: E402
from facebook_business.adobjects.leadgenquestion import LeadGenQuestion  # noqa: E402
from facebook_business.adobjects.page import Page  # noqa: E402
from facebook_business.api import Cursor, FacebookAdsApi  # noqa: E402
from facebook_business.exceptions import FacebookRequestError  # noqa: E402
from facebook_business.session import FacebookSession  # noqa: E402

pytestmark = pytest.mark.e2e
WORLD = World.build(seed=7, people=120)
VERSION = "v26.0"  # the SDK's own API_VERSION
DEMO_FORM = "7000000000001"
LEAD_FIELDS = [
    Lead.Field.id, Lead.Field.created_time, Lead.Field.ad_id, Lead.Field.form_id,
    Lead.Field.field_data, Lead.Field.is_organic, Lead.Field.platform,
    Lead.Field.custom_disclaimer_responses,
]  # fmt: skip
LEAD = str(8_000_000_000_000 + 1)  # a seeded lead (LEAD_ID_BASE + person key)
CALLS: list[int] = []  # SDK requests per test, reported by the last test of the module


@dataclass
class Graph:
    """An SDK api pointed at a running sandbox, and the sandbox's state."""

    api: FacebookAdsApi
    sandbox: GraphSandbox


def _connect(monkeypatch: pytest.MonkeyPatch, base_url: str, **init: Any) -> FacebookAdsApi:
    monkeypatch.setattr(FacebookSession, "GRAPH", base_url)  # the host, nothing else
    options: dict[str, Any] = {"app_secret": APP_SECRET, "access_token": ACCESS_TOKEN, **init}
    return FacebookAdsApi.init(api_version=VERSION, crash_log=False, **options)


@pytest.fixture
def graph_factory(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """`make(**sandbox_options, init={...})` serves a sandbox and points the SDK at it."""
    apis: list[FacebookAdsApi] = []
    stack: list[Any] = []

    def make(init: dict[str, Any] | None = None, **options: Any) -> Graph:
        app = create_app(WORLD, **options)
        server = serve(Starlette(routes=[Mount(MOUNT_PREFIX, app=app)]))
        url = server.__enter__()
        stack.append(server)
        api = _connect(monkeypatch, url + MOUNT_PREFIX, **(init or {}))
        apis.append(api)
        return Graph(api, app.state.sandbox)

    yield make
    for server in reversed(stack):
        server.__exit__(None, None, None)
    CALLS.append(sum(api.get_num_requests_attempted() for api in apis))
    FacebookAdsApi.set_default_api(None)


@pytest.fixture
def graph(graph_factory: Any) -> Graph:
    made: Graph = graph_factory()
    return made


@pytest.fixture
def conforming() -> Iterator[None]:
    """The SDK's requests must all fit the sandbox's operation table."""
    with recording() as seen:
        yield
    assert seen, "no request was checked"
    assert [c for c in seen if c.problems] == []


def graph_unix(created_time: str) -> int:
    """Unix seconds of Graph's `2018-02-28T08:49:14+0000` (the format Meta documents)."""
    return int(datetime.strptime(created_time, "%Y-%m-%dT%H:%M:%S%z").timestamp())


def form_leads(sandbox: GraphSandbox, form_id: str) -> list[Any]:
    return [x for x in sandbox.leads if x.form_id == form_id]


# -- reads ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("conforming")
def test_the_page_lists_its_lead_gen_forms_as_typed_forms(graph: Graph) -> None:
    fields = [LeadgenForm.Field.id, LeadgenForm.Field.name, LeadgenForm.Field.status,
              LeadgenForm.Field.locale, LeadgenForm.Field.created_time,
              LeadgenForm.Field.questions]  # fmt: skip
    forms = list(Page(PAGE_ID).get_lead_gen_forms(fields=fields, params={"limit": 3}))

    assert all(isinstance(f, LeadgenForm) for f in forms)
    assert [f[LeadgenForm.Field.id] for f in forms] == [
        f.id for f in sorted(graph.sandbox.forms, key=lambda f: f.created_time, reverse=True)
    ]
    statuses = {v for k, v in vars(LeadgenForm.Status).items() if not k.startswith("_")}
    assert {f[LeadgenForm.Field.status] for f in forms} <= statuses
    demo = next(f for f in forms if f["id"] == DEMO_FORM)
    keys = {q[LeadGenQuestion.Field.key] for q in demo[LeadgenForm.Field.questions]}
    assert {"email", "full_name", "which_plan_interests_you?"} <= keys
    assert graph_unix(demo[LeadgenForm.Field.created_time]) == graph.sandbox.forms[0].created_time
    assert graph.api.get_num_requests_attempted() == 2  # 4 forms, 3 a page


@pytest.mark.usefixtures("conforming")
def test_the_sdk_cursor_pages_a_forms_leads_to_the_end(graph: Graph) -> None:
    expected = form_leads(graph.sandbox, DEMO_FORM)
    assert len(expected) > 7

    cursor = LeadgenForm(DEMO_FORM).get_leads(fields=LEAD_FIELDS, params={"limit": 7})
    leads = list(cursor)

    assert isinstance(cursor, Cursor) and all(isinstance(x, Lead) for x in leads)
    assert sorted(x[Lead.Field.id] for x in leads) == sorted(x.id for x in expected)
    times = [graph_unix(x[Lead.Field.created_time]) for x in leads]
    assert times == sorted(times, reverse=True)  # newest first, as Graph lists them
    assert graph.api.get_num_requests_attempted() == -(-len(expected) // 7)
    organic = [x for x in leads if x[Lead.Field.is_organic]]
    assert organic and all(Lead.Field.ad_id not in x for x in organic)
    assert all(x[Lead.Field.form_id] == DEMO_FORM for x in leads)


@pytest.mark.usefixtures("conforming")
def test_with_the_worlds_clock_set_the_sdk_pages_only_leads_submitted_by_then(
    graph: Graph,
) -> None:
    """The demo's replay sets the world's clock: a form's leads page through the SDK's cursor
    as they stood then, and a lead submitted later is unknown to a read by id."""
    expected = form_leads(graph.sandbox, DEMO_FORM)
    times = sorted(x.created_time for x in expected)
    middle = times[len(times) // 2]
    shown = sorted(x.id for x in expected if x.created_time <= middle)
    later = next(x.id for x in expected if x.created_time > middle)
    WORLD.clock = datetime.fromtimestamp(middle, UTC)
    try:
        leads = list(LeadgenForm(DEMO_FORM).get_leads(fields=["id"], params={"limit": 5}))
        assert sorted(x[Lead.Field.id] for x in leads) == shown
        with pytest.raises(FacebookRequestError):
            Lead(later).api_get(fields=["id"])
    finally:
        WORLD.clock = None
    assert Lead(later).api_get(fields=["id"])[Lead.Field.id] == later


@pytest.mark.usefixtures("conforming")
def test_an_empty_first_page_carries_the_cursor_the_sdk_resumes_from(
    graph_factory: Any,
) -> None:
    graph = graph_factory(empty_pages=True)
    expected = sorted(x.id for x in form_leads(graph.sandbox, DEMO_FORM))

    cursor = LeadgenForm(DEMO_FORM).get_leads(fields=["id"], params={"limit": 10})
    # The SDK's Cursor ends an iteration at an empty page; iterated again it goes on from
    # `paging.cursors.after`, which Graph sends on an empty page that has `next`.
    first = list(cursor)
    rest = list(cursor)

    assert sorted(x["id"] for x in first + rest) == expected


@pytest.mark.usefixtures("conforming")
def test_a_lead_by_id_comes_back_with_its_field_data(graph: Graph) -> None:
    stored = form_leads(graph.sandbox, DEMO_FORM)[3]

    lead = Lead(stored.id).api_get(fields=LEAD_FIELDS)

    assert isinstance(lead, Lead) and lead[Lead.Field.id] == stored.id
    assert lead[Lead.Field.field_data] == stored.field_data
    for answer in lead[Lead.Field.field_data]:
        assert isinstance(answer["name"], str) and isinstance(answer["values"], list)
    assert graph_unix(lead[Lead.Field.created_time]) == stored.created_time
    assert lead[Lead.Field.is_organic] is (not stored.ad)
    assert set(lead.export_all_data()) <= set(LEAD_FIELDS)


@pytest.mark.usefixtures("conforming")
# The SDK warns of `questions{…}` (its field check knows plain names only); Graph takes it.
@pytest.mark.filterwarnings("ignore:.*does not allow field.*:UserWarning")
def test_the_connectors_own_field_lists_read_through_the_sdk(graph: Graph) -> None:
    lead_id = form_leads(graph.sandbox, DEMO_FORM)[0].id
    lead = Lead(lead_id).api_get(fields=CONNECTOR_LEAD_FIELDS.split(","))
    form = LeadgenForm(DEMO_FORM).api_get(fields=[CONNECTOR_FORM_FIELDS])

    assert lead[Lead.Field.field_data] and lead[Lead.Field.form_id] == DEMO_FORM
    assert {q["key"] for q in form[LeadgenForm.Field.questions]} >= {"email"}


@pytest.mark.usefixtures("conforming")
@pytest.mark.parametrize(
    "conditions",
    [
        # as the connector sends it: its default operator, Unix seconds
        lambda t: [{"field": "time_created", "operator": "GREATER_THAN_OR_EQUAL", "value": t}],
        lambda t: [{"field": "time_created", "operator": "GREATER_THAN", "value": t}],
        lambda t: [
            {"field": "time_created", "operator": "GREATER_THAN", "value": t - 30 * 86400},
            {"field": "time_created", "operator": "LESS_THAN", "value": t},
        ],
    ],
    ids=["at-or-after", "after", "window"],
)
def test_filtering_on_time_created_selects_by_unix_seconds(graph: Graph, conditions: Any) -> None:
    leads = form_leads(graph.sandbox, DEMO_FORM)
    pivot = sorted(x.created_time for x in leads)[len(leads) // 2]
    filtering = conditions(pivot)
    ops = {"GREATER_THAN_OR_EQUAL": int.__ge__, "GREATER_THAN": int.__gt__,
           "LESS_THAN": int.__lt__}  # fmt: skip
    expected = sorted(
        x.id
        for x in leads
        if all(ops[c["operator"]](x.created_time, c["value"]) for c in filtering)
    )
    assert 0 < len(expected) < len(leads)
    assert FacebookLeadsSettings.model_fields["filter_operator"].default == "GREATER_THAN_OR_EQUAL"

    got = LeadgenForm(DEMO_FORM).get_leads(fields=["id"], params={"filtering": filtering})

    assert sorted(x["id"] for x in got) == expected
    assert graph.sandbox.filters_ignored == 0


# -- errors ------------------------------------------------------------------------------------


def _refused(call: Any) -> FacebookRequestError:
    with pytest.raises(FacebookRequestError) as caught:
        result = call()
        list(result) if isinstance(result, Cursor) else result
    return caught.value


@pytest.mark.parametrize("status", [400, 401])
def test_a_bad_token_is_an_oauth_exception_190(graph_factory: Any, status: int) -> None:
    # Meta's access-token guide says token errors come as HTTP 400; the sandbox can answer 401
    # (`error_status`) so that callers are seen to classify by the code, not the status.
    graph_factory(error_status=status, init={"access_token": "not-the-page-token"})

    error = _refused(lambda: Page(PAGE_ID).get_lead_gen_forms(fields=["id"]))

    assert error.http_status() == status
    assert error.api_error_code() == 190 and error.api_error_type() == "OAuthException"
    assert "access token" in error.api_error_message()
    assert error.api_transient_error() is False


def test_an_expired_token_carries_its_subcode(graph_factory: Any) -> None:
    graph_factory(faults=[Fault(code=190, subcode=463, match="/leads")])

    error = _refused(lambda: LeadgenForm(DEMO_FORM).get_leads(fields=["id"]))

    assert (error.api_error_code(), error.api_error_subcode()) == (190, 463)
    assert error.http_status() == 400 and error.api_error_type() == "OAuthException"


def test_a_wrong_appsecret_proof_is_refused(graph_factory: Any) -> None:
    graph_factory(require_proof=True, init={"app_secret": "not-the-app-secret"})

    error = _refused(lambda: Page(PAGE_ID).api_get(fields=["id"]))

    assert error.http_status() == 400 and error.api_error_code() == 100
    assert "appsecret_proof" in error.api_error_message()


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (lambda: Lead(LEAD).api_get(fields=["id", "favourite_colour"]), "nonexisting field"),
        (lambda: LeadgenForm(DEMO_FORM).get_leads(params={"limit": "many"}), "limit"),
        (
            lambda: LeadgenForm(DEMO_FORM).get_leads(
                params={"filtering": [{"field": "time_created", "operator": "EQUAL", "value": 1}]}
            ),
            "operator",
        ),
        (lambda: LeadgenForm(DEMO_FORM).get_leads(params={"since": 1700000000}), "since"),
    ],
    ids=["unknown-field", "limit-not-a-number", "unknown-operator", "undeclared-parameter"],
)
@pytest.mark.filterwarnings("ignore:.*does not allow field favourite_colour:UserWarning")
def test_an_invalid_parameter_is_error_100(graph: Graph, call: Any, says: str) -> None:
    with recording() as seen:
        error = _refused(call)

    assert error.http_status() == 400 and error.api_error_code() == 100
    assert error.api_error_message().startswith("(#100)") and says in error.api_error_message()
    # a parameter outside the SDK's table is also a recorded conformance problem
    problems = [p for c in seen for p in c.problems]
    assert bool(problems) is (says in ("since", "limit"))


@pytest.mark.parametrize(
    ("code", "status", "says"),
    [
        (4, 400, "Application request limit reached"),
        (17, 400, "User request limit reached"),
        (32, 400, "Page request limit reached"),
        (80005, 400, "leadgen"),
        (2, 500, "retry"),
    ],
)
def test_throttling_and_transient_errors_keep_their_code_and_status(
    graph_factory: Any, code: int, status: int, says: str
) -> None:
    graph = graph_factory(faults=[Fault(code=code, status=status, regain_minutes=3)])

    error = _refused(lambda: Page(PAGE_ID).get_lead_gen_forms(fields=["id"]))

    assert error.http_status() == status and error.api_error_code() == code
    assert says in error.api_error_message()
    assert error.api_transient_error() is (code == 2)
    usage = json.loads(error.http_headers()["X-Business-Use-Case-Usage"])
    assert usage[PAGE_ID][0]["estimated_time_to_regain_access"] == 3
    # the fault was used up: the same call now succeeds
    assert [f["id"] for f in Page(PAGE_ID).get_lead_gen_forms(fields=["id"])]
    assert graph.sandbox.throttled == (0 if code == 2 else 1)


def test_over_the_rate_limit_the_sdk_sees_80005(graph_factory: Any) -> None:
    graph_factory(rate_limit=1, rate_window=600)
    Page(PAGE_ID).api_get(fields=["id"])

    error = _refused(lambda: Page(PAGE_ID).api_get(fields=["id"]))

    assert error.api_error_code() == 80005 and error.http_status() == 400


def test_an_unknown_object_is_refused(graph: Graph) -> None:
    by_id = _refused(lambda: Lead("8999999999999999").api_get(fields=["id"]))
    by_name = _refused(lambda: Page("no-such-page").api_get(fields=["id"]))

    assert (by_id.http_status(), by_id.api_error_code(), by_id.api_error_subcode()) == (
        400, 100, 33
    )  # fmt: skip
    assert by_id.api_error_type() == "GraphMethodException"
    assert "does not exist" in by_id.api_error_message()
    assert (by_name.http_status(), by_name.api_error_code()) == (404, 803)
    assert "no-such-page" in by_name.api_error_message()


# -- the conformance table against the SDK's generated classes ----------------------------------


def _sdk_fields(cls: Any) -> set[str]:
    return set(cls._field_types)


def test_the_conformance_table_is_the_sdks() -> None:
    assert _sdk_fields(Lead) == conformance.LEAD_FIELDS
    assert {v for k, v in vars(Lead.Field).items() if k[0] != "_"} == conformance.LEAD_FIELDS
    assert _sdk_fields(LeadgenForm) == conformance.FORM_FIELDS
    assert _sdk_fields(LeadGenQuestion) == conformance.QUESTION_FIELDS
    statuses = {v for k, v in vars(LeadgenForm.Status).items() if not k.startswith("_")}
    assert set(conformance.FORM_STATUSES) == statuses
    assert "facebook-business " + version("facebook-business") in conformance.SOURCE
    # the generated methods the table names exist with the endpoints it declares
    sdk = FacebookAdsApi(FacebookSession(access_token="x"), VERSION)
    forms = Page("1", api=sdk).get_lead_gen_forms(pending=True)
    leads = LeadgenForm("2", api=sdk).get_leads(pending=True)
    paths = {op.name: op.path for op in conformance.OPERATIONS}
    assert forms._endpoint == "leadgen_forms"
    assert paths["Page.get_lead_gen_forms"].endswith("/leadgen_forms")
    assert leads._endpoint == "leads" and paths["LeadgenForm.get_leads"].endswith("/leads")


def test_zz_report_the_number_of_sdk_calls() -> None:
    print(f"\nfacebook-business SDK calls in the contract tests: {sum(CALLS)}")
    assert sum(CALLS) > 0
