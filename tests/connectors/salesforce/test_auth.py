"""Salesforce auth on documented payloads: the three flows, instance_url, expiry, rotation."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from connectors.salesforce import SalesforceSettings
from connectors.salesforce.client import SalesforceClient
from core.errors import AuthError, ConfigError
from tests.connectors.salesforce.payloads import (
    ACCESS,
    ACCESS_2,
    API,
    CLIENT_ID,
    CLIENT_SECRET,
    INSTANCE,
    LOGIN,
    REFRESH,
    SESSION_EXPIRED,
    TOKEN_URL,
    page,
    settings,
    token,
)

NOW = 1_760_000_000.0


def client(tmp_path: Path, **overrides: Any) -> SalesforceClient:
    block = SalesforceSettings.model_validate(settings(**overrides))
    return SalesforceClient("salesforce source 'sf'", "sources.sf", block, base_dir=tmp_path,
                            sleep=lambda _: None, clock=lambda: NOW)  # fmt: skip


def form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


@pytest.fixture
def rsa_pem() -> tuple[str, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()  # fmt: skip
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


@respx.mock
def test_refresh_token_flow_calls_the_instance_url_from_the_token_answer(tmp_path: Path) -> None:
    auth = respx.post(TOKEN_URL).respond(200, json=token())
    query = respx.get(f"{API}/query").respond(200, json=page([]))
    [rows] = list(client(tmp_path).query("SELECT Id FROM Lead"))
    assert rows == []
    assert form(auth.calls.last.request) == {
        "grant_type": "refresh_token", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH,
    }  # fmt: skip
    sent = query.calls.last.request
    assert sent.url.host == "acme.my.salesforce.com"  # not the login host
    assert sent.headers["Authorization"] == f"Bearer {ACCESS}"
    assert sent.headers["Sforce-Query-Options"] == "batchSize=2000"


@respx.mock
def test_login_host_and_api_version_are_settings(tmp_path: Path) -> None:
    respx.post("https://test.salesforce.com/services/oauth2/token").respond(
        200, json=token(instance="https://acme--uat.sandbox.my.salesforce.com")
    )
    route = respx.get("https://acme--uat.sandbox.my.salesforce.com/services/data/v65.0/query")
    route.respond(200, json=page([]))
    c = client(tmp_path, login_url="https://test.salesforce.com/", api_version="65.0")
    list(c.query("SELECT Id FROM Lead"))
    assert route.called


@respx.mock
def test_expired_session_is_refreshed_once_and_the_call_retried(tmp_path: Path) -> None:
    auth = respx.post(TOKEN_URL)
    auth.side_effect = [httpx.Response(200, json=token()),
                        httpx.Response(200, json=token(ACCESS_2))]  # fmt: skip
    query = respx.get(f"{API}/query")
    query.side_effect = [httpx.Response(401, json=SESSION_EXPIRED),
                         httpx.Response(200, json=page([{"Id": "00Q1"}]))]  # fmt: skip
    c = client(tmp_path)
    [rows] = list(c.query("SELECT Id FROM Lead"))
    assert rows == [{"Id": "00Q1"}]
    assert auth.call_count == 2
    tokens = [call.request.headers["Authorization"] for call in query.calls]
    assert tokens == [f"Bearer {ACCESS}", f"Bearer {ACCESS_2}"]


@respx.mock
def test_a_session_refused_twice_is_an_auth_error_not_a_loop(tmp_path: Path) -> None:
    auth = respx.post(TOKEN_URL).respond(200, json=token())
    query = respx.get(f"{API}/query").respond(401, json=SESSION_EXPIRED)
    with pytest.raises(AuthError, match="INVALID_SESSION_ID") as caught:
        list(client(tmp_path).query("SELECT Id FROM Lead"))
    assert (auth.call_count, query.call_count) == (2, 2)
    assert ACCESS not in str(caught.value)


@respx.mock
def test_a_rotated_refresh_token_is_persisted_and_used_next_time(tmp_path: Path) -> None:
    auth = respx.post(TOKEN_URL).respond(200, json=token(refresh_token="5Aep861rotated"))
    respx.get(f"{API}/query").respond(200, json=page([]))
    list(client(tmp_path).query("SELECT Id FROM Lead"))
    [saved] = (tmp_path / ".leadhub").glob("salesforce-*-oauth.json")
    assert json.loads(saved.read_text())["refresh_token"] == "5Aep861rotated"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    list(client(tmp_path).query("SELECT Id FROM Lead"))  # the next run
    assert form(auth.calls.last.request)["refresh_token"] == "5Aep861rotated"
    # A newly configured refresh token wins over the one on file.
    list(client(tmp_path, refresh_token="5Aep861reauthorized").query("SELECT Id FROM Lead"))
    assert form(auth.calls.last.request)["refresh_token"] == "5Aep861reauthorized"


@respx.mock
def test_a_refused_refresh_token_names_the_setting_and_hides_the_secret(tmp_path: Path) -> None:
    respx.post(TOKEN_URL).respond(
        400, json={"error": "invalid_grant", "error_description": "expired access/refresh token"}
    )
    with pytest.raises(AuthError) as caught:
        list(client(tmp_path).query("SELECT Id FROM Lead"))
    message = str(caught.value)
    assert "invalid_grant: expired access/refresh token" in message
    assert "sources.sf.refresh_token" in message
    assert REFRESH not in message and CLIENT_SECRET not in message


@respx.mock
def test_jwt_bearer_flow_signs_the_documented_claims(
    tmp_path: Path, rsa_pem: tuple[str, bytes]
) -> None:
    private, public = rsa_pem
    key_file = tmp_path / "sf.key"
    key_file.write_text(private)
    auth = respx.post(TOKEN_URL).respond(200, json=token())
    respx.get(f"{API}/query").respond(200, json=page([]))
    c = client(tmp_path, auth_flow="jwt", refresh_token=None, client_secret=None,
               username="integration@acme.com", private_key_path="sf.key")  # fmt: skip
    list(c.query("SELECT Id FROM Lead"))
    sent = form(auth.calls.last.request)
    assert sent["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert set(sent) == {"grant_type", "assertion"}  # no secret, no refresh token
    claims = jwt.decode(sent["assertion"], public, algorithms=["RS256"],
                        audience=LOGIN, options={"verify_exp": False})  # fmt: skip
    assert claims == {"iss": CLIENT_ID, "sub": "integration@acme.com", "aud": LOGIN,
                      "exp": int(NOW) + 180}  # fmt: skip
    assert jwt.get_unverified_header(sent["assertion"])["alg"] == "RS256"


@respx.mock
def test_an_inline_key_with_escaped_newlines_signs_too(
    tmp_path: Path, rsa_pem: tuple[str, bytes]
) -> None:
    private, public = rsa_pem
    auth = respx.post(TOKEN_URL).respond(200, json=token())
    respx.get(f"{API}/query").respond(200, json=page([]))
    c = client(
        tmp_path,
        auth_flow="jwt",
        refresh_token=None,
        username="u@acme.com",
        private_key=private.strip().replace("\n", "\\n"),
    )  # as an env var holds it
    list(c.query("SELECT Id FROM Lead"))
    assertion = form(auth.calls.last.request)["assertion"]
    assert jwt.decode(assertion, public, algorithms=["RS256"], audience=LOGIN,
                      options={"verify_exp": False})["sub"] == "u@acme.com"  # fmt: skip


def test_an_unusable_private_key_is_a_config_error_without_the_key(tmp_path: Path) -> None:
    with respx.mock:
        c = client(tmp_path, auth_flow="jwt", refresh_token=None, username="u@acme.com",
                   private_key="not-a-pem-key-0123456789")  # fmt: skip
        with pytest.raises(ConfigError, match=r"sources\.sf\.private_key") as caught:
            list(c.query("SELECT Id FROM Lead"))
    assert "not-a-pem-key" not in str(caught.value)


def test_jwt_audience_for_my_domain_sandboxes_is_the_test_login_server() -> None:
    block = SalesforceSettings.model_validate(settings(
        auth_flow="jwt", username="u@acme.com", private_key="-----BEGIN PRIVATE KEY-----",
        login_url="https://acme--uat.sandbox.my.salesforce.com"))  # fmt: skip
    assert block.audience == "https://test.salesforce.com"


@respx.mock
def test_client_credentials_flow_posts_id_and_secret_to_my_domain(tmp_path: Path) -> None:
    my_domain = "https://acme.my.salesforce.com"
    auth = respx.post(f"{my_domain}/services/oauth2/token").respond(200, json=token())
    respx.get(f"{API}/query").respond(200, json=page([]))
    c = client(tmp_path, auth_flow="client_credentials", refresh_token=None, login_url=my_domain)
    list(c.query("SELECT Id FROM Lead"))
    assert form(auth.calls.last.request) == {
        "grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET
    }  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"auth_flow": "client_credentials"}, "My Domain"),
        ({"refresh_token": None}, "needs `refresh_token`"),
        ({"auth_flow": "jwt"}, "needs `username`"),
        ({"auth_flow": "jwt", "username": "u@x.com"}, "private_key"),
        ({"api_version": "latest"}, "v62.0"),
        ({"login_url": "login.salesforce.com"}, "http"),
    ],
)
def test_settings_refuse_incomplete_flows(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SalesforceSettings.model_validate(settings(**overrides))


@respx.mock
def test_a_base_url_that_is_not_salesforce_works(tmp_path: Path) -> None:
    """A local org (e.g. the sandbox): login_url and instance_url on plain http."""
    respx.post("http://127.0.0.1:8080/salesforce/services/oauth2/token").respond(
        200, json=token(instance="http://127.0.0.1:8080/salesforce")
    )
    route = respx.get("http://127.0.0.1:8080/salesforce/services/data/v62.0/query")
    route.respond(200, json=page([{"Id": "00Q1"}]))
    c = client(tmp_path, login_url="http://127.0.0.1:8080/salesforce")
    assert list(c.query("SELECT Id FROM Lead")) == [[{"Id": "00Q1"}]]
    assert INSTANCE not in str(route.calls.last.request.url)


@respx.mock
def test_blocks_sharing_a_refresh_token_share_its_rotation(tmp_path: Path) -> None:
    """With rotation on, the token one block used stops working: the other must follow."""
    auth = respx.post(TOKEN_URL)
    auth.side_effect = [httpx.Response(200, json=token(refresh_token="5Aep861second")),
                        httpx.Response(200, json=token(refresh_token="5Aep861third"))]  # fmt: skip
    respx.get(f"{API}/query").respond(200, json=page([]))
    source, destination = client(tmp_path), client(tmp_path)  # both alive, e.g. `leadhub serve`
    list(source.query("SELECT Id FROM Lead"))
    list(destination.query("SELECT Id FROM Lead"))
    sent = [form(c.request)["refresh_token"] for c in auth.calls]
    assert sent == [REFRESH, "5Aep861second"]
