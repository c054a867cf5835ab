"""The Mailchimp client: data center and API root, OAuth metadata, problem+json errors, paging."""

from __future__ import annotations

import base64

import httpx
import pytest
import respx
from pydantic import ValidationError

from connectors.mailchimp.client import MailchimpClient
from connectors.mailchimp.settings import MailchimpSourceSettings, datacenter
from core.errors import AuthError, RateLimited, RequestRejected
from tests.connectors.mailchimp.payloads import (
    API_KEY,
    LIST,
    PROBLEM,
    ROOT,
    member,
    members_page,
    problem,
)

METADATA = "https://login.mailchimp.com/oauth2/metadata"
TOKEN = "oauth-token-5f2b9c"


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(sleep: Sleeps | None = None, **settings: object) -> MailchimpClient:
    settings.setdefault("list_ids", [LIST])
    if "access_token" not in settings:
        settings.setdefault("api_key", API_KEY)
    block = MailchimpSourceSettings.model_validate(settings)
    return MailchimpClient(
        "mailchimp source 'mc'", "sources.mc", block, sleep=Sleeps() if sleep is None else sleep
    )


# -- data center -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "dc"),
    [
        ("0123456789abcdef0123456789abcdef-us6", "us6"),
        ("abc-def-us21", "us21"),  # the text after the last `-`
        ("0123456789abcdef0123456789abcdef", None),  # a legacy key without a suffix
        ("0123456789abcdef-", None),
        ("0123456789abcdef-US6!", None),
    ],
)
def test_data_center_is_the_text_after_the_last_dash(key: str, dc: str | None) -> None:
    assert datacenter(key) == dc


@respx.mock
def test_the_key_suffix_decides_the_host_and_the_key_goes_as_basic_auth() -> None:
    route = respx.get(f"{ROOT}/lists/{LIST}/members").respond(200, json=members_page([]))
    client().get(f"/lists/{LIST}/members")
    auth = route.calls.last.request.headers["Authorization"]
    assert auth.startswith("Basic ")
    assert base64.b64decode(auth.removeprefix("Basic ")).decode().endswith(f":{API_KEY}")


@respx.mock
def test_base_url_overrides_the_data_center() -> None:
    route = respx.get("http://127.0.0.1:9/mailchimp/3.0/campaigns").respond(200, json={})
    client(base_url="http://127.0.0.1:9/mailchimp/").get("/campaigns")
    assert route.called


def test_a_key_without_data_center_is_a_config_error_naming_the_setting() -> None:
    with pytest.raises(ValidationError, match="api_key: has no data-center suffix"):
        MailchimpSourceSettings(api_key="0123456789abcdef", list_ids=[LIST])
    # With a base_url the suffix is not needed.
    MailchimpSourceSettings(api_key="0123456789abcdef", base_url="http://x.test", list_ids=[LIST])


def test_exactly_one_credential() -> None:
    with pytest.raises(ValidationError, match="exactly one of `api_key` and `access_token`"):
        MailchimpSourceSettings(list_ids=[LIST])
    with pytest.raises(ValidationError, match="exactly one"):
        MailchimpSourceSettings(api_key=API_KEY, access_token=TOKEN, list_ids=[LIST])


# -- OAuth -----------------------------------------------------------------------------------------


@respx.mock
def test_oauth_token_finds_its_data_center_in_the_metadata() -> None:
    meta = respx.get(METADATA).respond(200, json={
        "dc": "us6", "role": "owner", "accountname": "Acme", "user_id": "99999999",
        "login": {"email": "a@b.com", "login_id": "88888888", "login_name": "a@b.com",
                  "login_email": "a@b.com"},
        "login_url": "https://login.mailchimp.com", "api_endpoint": "https://us6.api.mailchimp.com",
    })  # fmt: skip
    route = respx.get(f"{ROOT}/campaigns").respond(200, json={"campaigns": []})
    mc = client(access_token=TOKEN)
    mc.get("/campaigns")
    mc.get("/campaigns")
    assert meta.call_count == 1  # looked up once
    assert meta.calls.last.request.headers["Authorization"] == f"OAuth {TOKEN}"
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {TOKEN}"


@respx.mock
def test_a_refused_token_answers_200_and_is_still_an_auth_error() -> None:
    respx.get(METADATA).respond(200, json={"error": "invalid_token"})
    with pytest.raises(AuthError) as caught:
        client(access_token=TOKEN).get("/campaigns")
    message = str(caught.value)
    assert "invalid_token" in message and "`sources.mc.access_token`" in message
    assert TOKEN not in message


@respx.mock
def test_metadata_pointing_away_from_mailchimp_is_refused() -> None:
    respx.get(METADATA).respond(200, json={"dc": "us6", "api_endpoint": "https://evil.test"})
    with pytest.raises(Exception, match="unexpected host"):
        client(access_token=TOKEN).get("/campaigns")


# -- errors ----------------------------------------------------------------------------------------


@respx.mock
def test_401_problem_names_the_key_setting_and_the_vendor_title() -> None:
    body = problem(401, "API Key Invalid", "Your API key may be invalid, or you've attempted "
                   "to access the wrong datacenter.")  # fmt: skip
    respx.get(f"{ROOT}/campaigns").respond(401, json=body, headers=PROBLEM)
    with pytest.raises(AuthError) as caught:
        client().get("/campaigns")
    message = str(caught.value)
    assert message.startswith("mailchimp source 'mc': GET /3.0/campaigns answered 401")
    assert "API Key Invalid: Your API key may be invalid" in message
    assert "check `sources.mc.api_key`" in message
    assert API_KEY not in message


@respx.mock
def test_400_problem_lists_the_field_errors_and_is_not_retried() -> None:
    body = problem(400, "Invalid Resource", "Your merge fields were invalid.",
                   [{"field": "RADIO", "message": "Please enter a value"}])  # fmt: skip
    route = respx.post(f"{ROOT}/lists/{LIST}").respond(400, json=body, headers=PROBLEM)
    with pytest.raises(RequestRejected, match=r"Invalid Resource: Your merge fields were invalid\. "
                       r"\(RADIO: Please enter a value\)"):  # fmt: skip
        client().call("POST", f"/lists/{LIST}", json={"members": []})
    assert route.call_count == 1


@respx.mock
def test_429_backs_off_without_retry_after_then_succeeds() -> None:
    too_many = problem(429, "Too Many Requests", "You have exceeded the limit of 10 simultaneous "
                       "connections.")  # fmt: skip
    respx.get(f"{ROOT}/campaigns").mock(side_effect=[
        httpx.Response(429, json=too_many, headers=PROBLEM),
        httpx.Response(429, json=too_many, headers=PROBLEM),
        httpx.Response(200, json={"campaigns": [], "total_items": 0}),
    ])  # fmt: skip
    sleeps = Sleeps()
    assert client(sleeps).get("/campaigns") == {"campaigns": [], "total_items": 0}
    assert len(sleeps) == 2 and all(0 <= s <= 60 for s in sleeps)


@respx.mock
def test_403_without_json_body_is_the_connection_limit_and_is_retried() -> None:
    respx.get(f"{ROOT}/campaigns").mock(
        side_effect=[httpx.Response(403, content=b""), httpx.Response(200, json={"campaigns": []})]
    )
    sleeps = Sleeps()
    client(sleeps).get("/campaigns")
    assert len(sleeps) == 1


@respx.mock
def test_403_with_problem_body_is_an_auth_error() -> None:
    body = problem(403, "User Disabled", "This account has been disabled.")
    respx.get(f"{ROOT}/campaigns").respond(403, json=body, headers=PROBLEM)
    with pytest.raises(AuthError, match="User Disabled"):
        client().get("/campaigns")


@respx.mock
def test_rate_limit_that_never_ends_gives_up_with_rate_limited() -> None:
    respx.get(f"{ROOT}/campaigns").respond(429, json=problem(429, "Too Many Requests", "slow"),
                                           headers=PROBLEM)  # fmt: skip
    sleeps = Sleeps()
    with pytest.raises(RateLimited):
        client(sleeps).get("/campaigns")
    assert len(sleeps) == 5  # six attempts in all


# -- paging ----------------------------------------------------------------------------------------


@respx.mock
def test_offset_paging_until_total_items() -> None:
    people = [member(id=f"id{i}", email_address=f"p{i}@example.com") for i in range(5)]
    route = respx.get(f"{ROOT}/lists/{LIST}/members").mock(side_effect=[
        httpx.Response(200, json=members_page(people[:2], 5)),
        httpx.Response(200, json=members_page(people[2:4], 5)),
        httpx.Response(200, json=members_page(people[4:], 5)),
    ])  # fmt: skip
    pages = list(client().pages(f"/lists/{LIST}/members", "members", {"status": "x"}, 2))
    assert [len(p) for p in pages] == [2, 2, 1]
    sent = [dict(c.request.url.params) for c in route.calls]
    assert [(p["count"], p["offset"]) for p in sent] == [("2", "0"), ("2", "2"), ("2", "4")]
    assert all(p["status"] == "x" for p in sent)


@respx.mock
def test_a_vendor_that_ignores_offset_is_stopped() -> None:
    same = members_page([member(id="a"), member(id="b")], 10)
    respx.get(f"{ROOT}/lists/{LIST}/members").respond(200, json=same)
    with pytest.raises(Exception, match="a second time"):
        list(client().pages(f"/lists/{LIST}/members", "members", {}, 2))
