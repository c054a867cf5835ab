"""HubSpot's official Python client (`hubspot-api-client`) against our HubSpot sandbox.

The client is used as a user's own tool would use it, with nothing changed but its host, over
real HTTP, once with its client-side validation (every required field of every model it reads
is checked) and once without. Its typed results and exceptions are the oracle: when the client
and the sandbox disagree, the sandbox is wrong. The world the sandbox is seeded from is the
oracle for the data (which contacts exist, their emails).

Covered: contacts list and paging to the end (the client's own `get_all` too), archived
contacts, get by id and by email, search with paging, batch read/update/upsert (and their 207
answers), contact properties and groups (read, batch read, create, update, archive), tasks
with associations, the v1 email events and form submissions (through the client's generic
`api_request`), and the errors 401, 404, 429 and 400.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

hubspot = pytest.importorskip("hubspot", reason="the contract extra is not installed")

from hubspot.crm.contacts import (  # noqa: E402
    ApiException,
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchReadInputSimplePublicObjectId,
    BatchResponseSimplePublicObject,
    BatchResponseSimplePublicObjectWithErrors,
    BatchResponseSimplePublicUpsertObject,
    Filter,
    FilterGroup,
    PublicMergeInput,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectId,
)
from hubspot.crm.objects.tasks import (  # noqa: E402
    AssociationSpec,
    BatchInputSimplePublicObjectBatchInputForCreate,
    PublicAssociationsForObject,
    PublicObjectId,
    SimplePublicObjectBatchInputForCreate,
)
from hubspot.crm.properties import (  # noqa: E402
    ApiException as PropertiesApiException,
)
from hubspot.crm.properties import (  # noqa: E402
    BatchReadInputPropertyName,
    OptionInput,
    PropertyCreate,
    PropertyGroupCreate,
    PropertyName,
    PropertyUpdate,
)
from starlette.applications import Starlette  # noqa: E402
from starlette.routing import Mount  # noqa: E402

from connectors.hubspot.sandbox.app import MOUNT_PREFIX, SANDBOX_TOKEN, create_app  # noqa: E402
from connectors.hubspot.sandbox.conformance import CLIENT, OPERATIONS  # noqa: E402
from connectors.hubspot.sandbox.data import FORM_GUID  # noqa: E402
from connectors.sandbox.conformance import Operation, recording  # noqa: E402
from connectors.sandbox.server import serve  # noqa: E402
from connectors.sandbox.world import World  # noqa: E402

WORLD = World.build(seed=5, people=240)
BROKEN = {p.key for p in WORLD.people if p.key in WORLD.malformed}
EMAILS = sorted(p.email for p in WORLD.people if p.in_hubspot and p.key not in BROKEN)
IN_HUBSPOT = {p.key for p in WORLD.people if p.in_hubspot}
LIVE = len(IN_HUBSPOT)
SENDS_BAD_REQUESTS = {"test_invalid_requests_are_400s"}
CALLS: list[int] = []  # client calls per test, summed at the end of the module


class Portal:
    """A served sandbox: its URL and the sandbox object (for counting calls)."""

    def __init__(self, url: str, app: Any) -> None:
        self.url, self.app = url, app

    def client(self, validation: bool, token: str = SANDBOX_TOKEN) -> Any:
        return hubspot.Client.create(
            access_token=token, host=self.url, client_side_validation=validation
        )

    def calls(self) -> int:
        return sum(self.app.state.sandbox.calls.values())


def served(**options: Any) -> Iterator[Portal]:
    app = create_app(WORLD, **options)
    with serve(Starlette(routes=[Mount(MOUNT_PREFIX, app=app)])) as root:
        portal = Portal(root + MOUNT_PREFIX, app)
        yield portal
        CALLS.append(portal.calls())


@pytest.fixture
def portal(request: pytest.FixtureRequest) -> Iterator[Portal]:
    """A sandbox; the client's requests must all conform (`conformance.OPERATIONS`) unless the
    test sends bad ones on purpose."""
    with recording() as seen:
        yield from served()
    if request.node.originalname not in SENDS_BAD_REQUESTS:
        assert [(c.method, c.path, c.problems) for c in seen if c.problems] == []


@pytest.fixture(params=[True, False], ids=["validating", "lenient"])
def client(request: pytest.FixtureRequest, portal: Portal) -> Any:
    """The official client on the sandbox, with and without its client-side validation."""
    return portal.client(request.param)


@pytest.fixture(scope="module", autouse=True)
def count_calls() -> Iterator[None]:
    yield
    print(f"\nhubspot-api-client calls made against the sandbox: {sum(CALLS)}")


def error_body(exc: ApiException) -> dict[str, Any]:
    body = json.loads(exc.body)
    assert isinstance(body, dict)
    return body


# -- contacts: list, get, search -----------------------------------------------------------------


def test_list_pages_to_the_end_with_every_property_asked_for(client: Any) -> None:
    wanted = ["email", "firstname", "lifecyclestage"]
    seen: list[Any] = []
    after = None
    while True:
        page = client.crm.contacts.basic_api.get_page(
            limit=100, after=after, properties=wanted, archived=False
        )
        seen.extend(page.results)
        if page.paging is None or page.paging.next is None:
            break
        after = page.paging.next.after
    assert len(seen) == len({c.id for c in seen}) == LIVE
    assert all(set(wanted) <= set(c.properties) for c in seen)
    emails = sorted(c.properties["email"] for c in seen if "@" in c.properties["email"])
    assert emails == EMAILS
    assert all(c.properties["lifecyclestage"] for c in seen)
    # the client's own pager reaches the same end
    assert len(client.crm.contacts.get_all(properties=wanted)) == LIVE


def test_an_archived_contact_is_listed_only_as_archived(client: Any) -> None:
    first = client.crm.contacts.basic_api.get_page(limit=3, properties=["email"]).results[0]
    client.crm.contacts.basic_api.archive(contact_id=first.id)
    archived = client.crm.contacts.basic_api.get_page(archived=True, properties=["email"])
    assert [c.id for c in archived.results] == [first.id]
    assert archived.results[0].archived is True
    assert archived.results[0].archived_at is not None
    live = client.crm.contacts.get_all(properties=["email"])
    assert first.id not in {c.id for c in live} and len(live) == LIVE - 1
    by_email = BatchReadInputSimplePublicObjectId(
        properties=["email"],
        properties_with_history=[],
        id_property="email",
        inputs=[SimplePublicObjectId(id=first.properties["email"])],
    )
    found = client.crm.contacts.batch_api.read(by_email, archived=True)
    assert [c.id for c in found.results] == [first.id]


def test_get_by_id_and_by_email(client: Any) -> None:
    email = EMAILS[3]
    one = client.crm.contacts.basic_api.get_by_id(
        contact_id=email, id_property="email", properties=["email", "firstname"]
    )
    assert one.properties["email"] == email
    again = client.crm.contacts.basic_api.get_by_id(contact_id=one.id, properties=["firstname"])
    assert again.id == one.id
    assert again.properties["firstname"] == one.properties["firstname"]


def test_search_pages_to_the_end_in_order(client: Any) -> None:
    request = PublicObjectSearchRequest(
        filter_groups=[
            FilterGroup(
                filters=[
                    Filter(property_name="lifecyclestage", operator="EQ", value="lead"),
                ]
            )
        ],
        sorts=["email"],
        properties=["email", "lifecyclestage"],
        limit=50,
    )
    seen: list[Any] = []
    while True:
        page = client.crm.contacts.search_api.do_search(request)
        seen.extend(page.results)
        if page.paging is None or page.paging.next is None:
            break
        request.after = page.paging.next.after
    leads = [p for p in WORLD.people if p.in_hubspot and not WORLD.outcomes_of(p.key)]
    assert page.total == len(seen) and len(seen) >= len(leads) > 50
    assert all(c.properties["lifecyclestage"] == "lead" for c in seen)
    emails = [c.properties["email"].lower() for c in seen]
    assert emails == sorted(emails)


def test_with_the_worlds_clock_set_the_client_reads_contacts_as_they_stood(
    portal: Portal, client: Any
) -> None:
    """A contact whose lifecycle stage changed after the clock reads with its earlier stage and
    modification time, in a get and in a search; a contact made after the clock is in no page.
    Oracle: the portal's contacts and their recorded changes, read by the official client."""
    contacts = portal.app.state.sandbox.portal.contacts
    changed = next(c for c in contacts.values()
                   if c.live and any("lifecyclestage" in v for _, v in c.changes))  # fmt: skip
    when = next(ms for ms, v in changed.changes if "lifecyclestage" in v)
    before = changed.initial["lifecyclestage"]
    later = {c.id for c in contacts.values() if c.created_ms > when - 1}
    WORLD.clock = datetime.fromtimestamp((when - 1) / 1000, UTC)
    try:
        got = client.crm.contacts.basic_api.get_by_id(
            changed.id, properties=["lifecyclestage", "lastmodifieddate"]
        )
        assert got.properties["lifecyclestage"] == before != changed.properties["lifecyclestage"]
        assert got.updated_at.timestamp() * 1000 < when
        request = PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=[
                Filter(property_name="hs_object_id", operator="EQ", value=changed.id)])],
            properties=["lifecyclestage"],
        )  # fmt: skip
        found = client.crm.contacts.search_api.do_search(request).results
        assert [c.properties["lifecyclestage"] for c in found] == [before]
        listed = {c.id for c in client.crm.contacts.get_all()}
        assert later and listed and not listed & later
    finally:
        WORLD.clock = None
    again = client.crm.contacts.basic_api.get_by_id(changed.id, properties=["lifecyclestage"])
    assert again.properties["lifecyclestage"] == changed.properties["lifecyclestage"]


def test_merge_leaves_the_merged_id_pointing_at_the_survivor(client: Any) -> None:
    first, second = client.crm.contacts.basic_api.get_page(limit=2).results
    merged = client.crm.contacts.basic_api.merge(
        PublicMergeInput(primary_object_id=first.id, object_id_to_merge=second.id)
    )
    assert merged.id == first.id
    assert second.id in merged.properties["hs_merged_object_ids"].split(";")
    assert client.crm.contacts.basic_api.get_by_id(contact_id=second.id).id == first.id


# -- contacts: batch read / update / upsert ------------------------------------------------------


def test_batch_read_by_email_names_the_missing_one(client: Any) -> None:
    body = BatchReadInputSimplePublicObjectId(
        properties=["email", "firstname"],
        properties_with_history=[],
        id_property="email",
        inputs=[SimplePublicObjectId(id=e) for e in [*EMAILS[:5], "nobody@example.org"]],
    )
    answer = client.crm.contacts.batch_api.read(body)
    assert isinstance(answer, BatchResponseSimplePublicObjectWithErrors)
    assert sorted(c.properties["email"] for c in answer.results) == EMAILS[:5]
    assert answer.num_errors == 1 and answer.errors[0].category == "OBJECT_NOT_FOUND"
    assert answer.errors[0].context["ids"] == ["nobody@example.org"]
    assert answer.started_at <= answer.completed_at


def test_batch_update_writes_and_a_207_names_the_bad_records(client: Any) -> None:
    ids = [c.id for c in client.crm.contacts.basic_api.get_page(limit=3).results]
    good = BatchInputSimplePublicObjectBatchInput(
        inputs=[
            SimplePublicObjectBatchInput(
                id=i, properties={"jobtitle": f"Buyer {n}"}, object_write_trace_id=f"t{n}"
            )
            for n, i in enumerate(ids)
        ]
    )
    answer = client.crm.contacts.batch_api.update(good)
    assert isinstance(answer, BatchResponseSimplePublicObject)
    assert answer.status == "COMPLETE"
    assert {(c.id, c.properties["jobtitle"]) for c in answer.results} == {
        (i, f"Buyer {n}") for n, i in enumerate(ids)
    }
    bad = BatchInputSimplePublicObjectBatchInput(
        inputs=[
            SimplePublicObjectBatchInput(
                id=ids[0], properties={"numemployees": "many"}, object_write_trace_id="bad-value"
            ),
            SimplePublicObjectBatchInput(
                id="999999999",
                properties={"jobtitle": "x"},
                object_write_trace_id="no-such-contact",
            ),
            SimplePublicObjectBatchInput(
                id=ids[1], properties={"jobtitle": "Owner"}, object_write_trace_id="fine"
            ),
        ]
    )
    mixed = client.crm.contacts.batch_api.update(bad)
    assert isinstance(mixed, BatchResponseSimplePublicObjectWithErrors)
    assert [c.id for c in mixed.results] == [ids[1]]
    by_trace = {e.context["objectWriteTraceId"][0]: e for e in mixed.errors}
    assert set(by_trace) == {"bad-value", "no-such-contact"} and mixed.num_errors == 2
    assert by_trace["bad-value"].errors[0].context["propertyName"] == ["numemployees"]
    assert by_trace["no-such-contact"].category == "OBJECT_NOT_FOUND"


def test_batch_upsert_by_email_creates_and_updates(client: Any) -> None:
    body = BatchInputSimplePublicObjectBatchInputUpsert(
        inputs=[
            SimplePublicObjectBatchInputUpsert(
                id=EMAILS[0], id_property="email", properties={"jobtitle": "Upserted"}
            ),
            SimplePublicObjectBatchInputUpsert(
                id="new.person@example.org", id_property="email", properties={"firstname": "New"}
            ),
        ]
    )
    answer = client.crm.contacts.batch_api.upsert(body)
    assert isinstance(answer, BatchResponseSimplePublicUpsertObject)
    new = {c.properties["email"]: c.new for c in answer.results}
    assert new == {EMAILS[0]: False, "new.person@example.org": True}
    assert len(client.crm.contacts.get_all()) == LIVE + 1


# -- properties and groups -----------------------------------------------------------------------


def test_properties_read_create_update_archive(client: Any) -> None:
    core = client.crm.properties.core_api
    every = core.get_all(object_type="contacts")
    assert {"email", "lifecyclestage"} <= {p.name for p in every.results}
    stage = core.get_by_name(object_type="contacts", property_name="lifecyclestage")
    assert stage.type == "enumeration" and "lead" in {o.value for o in stage.options}
    assert stage.modification_metadata.read_only_definition is not None
    created = core.create(
        object_type="contacts",
        property_create=PropertyCreate(
            name="leadhub_tier",
            label="leadhub tier",
            type="enumeration",
            field_type="select",
            group_name="contactinformation",
            description="tier",
            options=[OptionInput(label="A", value="A", hidden=False, display_order=1)],
        ),
    )
    assert created.name == "leadhub_tier" and [o.value for o in created.options] == ["A"]
    updated = core.update(
        object_type="contacts",
        property_name="leadhub_tier",
        property_update=PropertyUpdate(
            options=[
                OptionInput(label="A", value="A", hidden=False, display_order=1),
                OptionInput(label="B", value="B", hidden=False, display_order=2),
            ]
        ),
    )
    assert [o.value for o in updated.options] == ["A", "B"]
    read = client.crm.properties.batch_api.read(
        object_type="contacts",
        batch_read_input_property_name=BatchReadInputPropertyName(
            archived=False,
            inputs=[
                PropertyName(name="leadhub_tier"),
                PropertyName(name="email"),
            ],
        ),
    )
    assert sorted(p.name for p in read.results) == ["email", "leadhub_tier"]
    core.archive(object_type="contacts", property_name="leadhub_tier")
    with pytest.raises(PropertiesApiException) as gone:
        core.get_by_name(object_type="contacts", property_name="leadhub_tier")
    assert gone.value.status == 404


def test_property_groups_read_and_create(client: Any) -> None:
    groups = client.crm.properties.groups_api
    assert "contactinformation" in {g.name for g in groups.get_all(object_type="contacts").results}
    made = groups.create(
        object_type="contacts",
        property_group_create=PropertyGroupCreate(
            name="leadhub", label="leadhub", display_order=-1
        ),
    )
    assert made.name == "leadhub" and made.archived is False
    assert groups.get_by_name(object_type="contacts", group_name="leadhub").label == "leadhub"
    with pytest.raises(PropertiesApiException) as twice:
        groups.create(
            object_type="contacts",
            property_group_create=PropertyGroupCreate(name="leadhub", label="leadhub"),
        )
    assert twice.value.status == 409


# -- tasks ---------------------------------------------------------------------------------------


def test_tasks_batch_create_with_an_association(client: Any) -> None:
    contact = client.crm.contacts.basic_api.get_page(limit=1).results[0]
    body = BatchInputSimplePublicObjectBatchInputForCreate(
        inputs=[
            SimplePublicObjectBatchInputForCreate(
                properties={
                    "hs_timestamp": "2026-12-01T09:00:00Z",
                    "hs_task_subject": "Call",
                    "hs_task_priority": "HIGH",
                    "hs_task_status": "NOT_STARTED",
                },
                associations=[
                    PublicAssociationsForObject(
                        to=PublicObjectId(id=contact.id),
                        types=[
                            AssociationSpec(
                                association_category="HUBSPOT_DEFINED", association_type_id=204
                            )
                        ],
                    )
                ],
                object_write_trace_id="7",
            ),
        ]
    )
    created, status, _ = client.crm.objects.tasks.batch_api.create_with_http_info(body)
    assert status == 201
    task = created.results[0]
    assert task.properties["hs_task_subject"] == "Call" and task.created_at is not None
    again = client.crm.objects.tasks.basic_api.get_by_id(
        task_id=task.id, properties=["hs_task_subject"]
    )
    assert again.properties["hs_task_subject"] == "Call"


# -- v1 engagement (no generated API: the client's generic request) ------------------------------


def test_email_events_and_form_submissions_page_to_the_end(portal: Portal) -> None:
    client = portal.client(True)
    events: list[dict[str, Any]] = []
    offset = None
    while True:
        qs = {"limit": 100, **({"offset": offset} if offset else {})}
        answer = client.api_request(
            {"method": "GET", "path": "/email/public/v1/events", "qs": qs, "base_url": portal.url}
        )
        assert answer.status_code == 200
        body = answer.json()
        events.extend(body["events"])
        if not body["hasMore"]:
            break
        offset = body["offset"]
    assert events and len({e["id"] for e in events}) == len(events)
    forms: list[dict[str, Any]] = []
    after = None
    while True:
        qs = {"limit": 50, **({"after": after} if after else {})}
        path = f"/form-integrations/v1/submissions/forms/{FORM_GUID}"
        body = client.api_request(
            {"method": "GET", "path": path, "qs": qs, "base_url": portal.url}
        ).json()
        forms.extend(body["results"])
        if "paging" not in body:
            break
        after = body["paging"]["next"]["after"]
    quotes = sum(
        1
        for e in WORLD.events
        if e.type == "form_submitted" and e.person not in BROKEN and e.person in IN_HUBSPOT
    )
    assert len(forms) == quotes


# -- errors --------------------------------------------------------------------------------------


def test_a_bad_token_is_a_401(portal: Portal) -> None:
    for validation in (True, False):
        client = portal.client(validation, token="pat-na1-not-a-token")
        with pytest.raises(ApiException) as refused:
            client.crm.contacts.basic_api.get_page(limit=1)
        assert refused.value.status == 401
        assert error_body(refused.value)["category"] == "INVALID_AUTHENTICATION"


def test_an_unknown_contact_or_property_is_a_404(client: Any) -> None:
    with pytest.raises(ApiException) as contact:
        client.crm.contacts.basic_api.get_by_id(contact_id="999999999")
    assert contact.value.status == 404
    assert error_body(contact.value)["category"] == "OBJECT_NOT_FOUND"
    with pytest.raises(PropertiesApiException) as prop:
        client.crm.properties.core_api.get_by_name(object_type="contacts", property_name="nope")
    assert prop.value.status == 404


def test_invalid_requests_are_400s(client: Any) -> None:
    with pytest.raises(ApiException) as too_many:
        client.crm.contacts.basic_api.get_page(limit=101)
    assert too_many.value.status == 400
    assert error_body(too_many.value)["category"] == "VALIDATION_ERROR"
    groups = [FilterGroup(filters=[Filter(property_name="email", operator="HAS_PROPERTY")])] * 6
    with pytest.raises(ApiException) as search:
        client.crm.contacts.search_api.do_search(PublicObjectSearchRequest(filter_groups=groups))
    assert search.value.status == 400
    with pytest.raises(PropertiesApiException) as definition:
        client.crm.properties.core_api.create(
            object_type="contacts",
            property_create=PropertyCreate(
                name="leadhub_bad",
                label="bad",
                type="number",
                field_type="select",
                group_name="contactinformation",
            ),
        )
    assert definition.value.status == 400


def test_the_ten_second_budget_answers_429() -> None:
    frozen = 1_796_000_000.0
    for portal in served(burst_limit=2, clock=lambda: frozen):
        client = portal.client(True)
        client.crm.contacts.basic_api.get_page(limit=1)
        client.crm.contacts.basic_api.get_page(limit=1)
        with pytest.raises(ApiException) as limited:
            client.crm.contacts.basic_api.get_page(limit=1)
        assert limited.value.status == 429
        assert error_body(limited.value)["policyName"] == "TEN_SECONDLY_ROLLING"


# -- the conformance table against the client's generated code ----------------------------------


def client_method(dotted: str) -> Any:
    """`crm.contacts.basic_api.get_page` → the client's `get_page_with_http_info`."""
    *where, name = dotted.split(".")
    api: Any = hubspot.Client.create(access_token="x")
    for part in where:
        api = getattr(api, part)
    return getattr(api, f"{name}_with_http_info")


def sent_query_names(method: Any) -> set[str]:
    return set(re.findall(r'query_params\.append\(\("(\w+)"', inspect.getsource(method)))


def body_model(method: Any) -> Any:
    """The request model the method sends as its body, or None."""
    source = inspect.getsource(method)
    found = re.search(r'body_params = local_var_params\["(\w+)"\]', source)
    if found is None:
        return None
    name = re.search(rf":type {found.group(1)}: (\w+)", source)
    assert name is not None
    package = importlib.import_module(method.__module__.rsplit(".api.", 1)[0])
    return getattr(package, name.group(1))


def required_of(model: Any) -> set[str]:
    names = re.findall(r"validation and (\w+) is None", inspect.getsource(model))
    return {model.attribute_map[n] for n in names}


def enum_of(model: Any, attribute: str) -> list[str] | None:
    source = inspect.getsource(model)
    setter = source.split(f"def {attribute}(self, {attribute}):", 1)[1].split("@property")[0]
    found = re.search(r"allowed_values = (\[[^\]]*\])", setter)
    return json.loads(found.group(1)) if found else None


def schema_problems(schema: dict[str, Any], model: Any, where: str) -> list[str]:
    """Where the table's JSON Schema and the client's model disagree (keys, required, enums)."""
    package = importlib.import_module(model.__module__.rsplit(".models.", 1)[0])
    keys = set(schema["properties"]) - DOCUMENTED_BEYOND_THE_MODELS
    problems = []
    if keys != set(model.attribute_map.values()):
        problems.append(f"{where}: keys {sorted(keys)} != {sorted(model.attribute_map.values())}")
    if set(schema.get("required", [])) != required_of(model):
        problems.append(f"{where}: required {schema.get('required')} != {required_of(model)}")
    for attribute, kind in model.openapi_types.items():
        key = model.attribute_map[attribute]
        declared = schema["properties"].get(key, {})
        enum = enum_of(model, attribute)
        if enum is not None and declared.get("enum") != enum:
            problems.append(f"{where}.{key}: enum {declared.get('enum')} != {enum}")
        inner = re.fullmatch(r"list\[(\w+)\]", kind)
        nested = getattr(package, inner.group(1) if inner else kind, None)
        if inspect.isclass(nested):
            sub = declared.get("items", {}) if inner else declared
            problems += schema_problems(sub, nested, f"{where}.{key}")
    return problems


DOCUMENTED_BEYOND_THE_MODELS = {"numberDisplayHint"}  # HubSpot's 2026-03 property reference


@pytest.mark.parametrize("operation", [o for o in OPERATIONS if o.source.startswith(CLIENT)],
                         ids=lambda o: f"{o.method} {o.path}")  # fmt: skip
def test_the_conformance_table_is_the_clients_own(operation: Operation) -> None:
    method = client_method(operation.source.split(": ", 1)[1])
    assert {p.name for p in operation.query} == sent_query_names(method)
    model = body_model(method)
    assert (operation.body is None) == (model is None)
    if model is not None and operation.body is not None:
        assert schema_problems(dict(operation.body), model, operation.name) == []
    path = re.search(r'call_api\(\s*"([^"]+)"', inspect.getsource(method))
    assert path is not None and v3_form(operation.path) == v3_form(path.group(1))


def v3_form(path: str) -> str:
    """A path in its v3 form, its parameters as `{}` (`{objectType}` is contacts here)."""
    path = re.sub(r"^/crm/(objects|properties)/2026-03/", r"/crm/v3/\1/", path)
    return re.sub(r"\{[^}]+\}", "{}", path.replace("{objectType}", "contacts"))
