"""The sandbox's OAuth token endpoint and sessions (shared/api/salesforce.md §1).

`POST /services/oauth2/token` answers the three server-side flows:
- `refresh_token`: client id and secret and a live refresh token; with `rotate` each refresh
  returns a new refresh token and the old one stops working.
- `urn:ietf:params:oauth:grant-type:jwt-bearer`: an RS256 assertion whose `iss` is the client
  id, `sub` the username, `aud` this login host (or login/test.salesforce.com) and `exp` in the
  next few minutes; with a public key configured the signature is checked too.
- `client_credentials`: client id and secret in the form or HTTP Basic.

Errors are `{"error", "error_description"}` with status 400. Sessions end after `lifetime_calls`
API calls or `lifetime_seconds`, or when a test expires them; then calls get 401
`INVALID_SESSION_ID`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from connectors.salesforce.sandbox.schema import ORG_ID, USER_ID

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
LOGIN_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
JWT_MAX_AHEAD = 300  # `exp` must be within 3 minutes; a little clock skew is forgiven


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status

    def response(self) -> Response:
        body = {"error": self.error, "error_description": self.description}
        return JSONResponse(body, self.status)


@dataclass
class Session:
    flow: str
    started: float
    calls: int = 0
    expired: bool = False


def base_url(request: Request) -> str:
    """Where this app is served, mount prefix included: the login host (a JWT's `aud`)."""
    url = request.url
    return f"{url.scheme}://{url.netloc}{request.scope.get('root_path', '')}".rstrip("/")


def instance_url(request: Request) -> str:
    """The `instance_url` handed out: scheme and host only, as a real org's is. Clients keep only
    the host of it (simple-salesforce builds `https://{host}/services/data/…`), so whatever
    serves the sandbox under a prefix serves its `/services` paths at the host root as well."""
    url = request.url
    return f"{url.scheme}://{url.netloc}"


def _expiry(claim: Any) -> float | None:
    """A JWT `exp` as seconds: a number, or a numeric string (simple-salesforce sends
    `f"{ts:.0f}"`, and Salesforce accepts it)."""
    if isinstance(claim, bool):
        return None
    if isinstance(claim, (int, float)):
        return float(claim)
    if isinstance(claim, str) and claim.strip().isdigit():
        return float(claim.strip())
    return None


class Auth:
    """Client credentials, refresh tokens and live sessions of the sandbox org."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        username: str,
        jwt_public_key: str | None = None,
        rotate: bool = False,
        lifetime_calls: int | None = None,
        lifetime_seconds: float | None = None,
    ) -> None:
        self.client_id, self.client_secret, self.username = client_id, client_secret, username
        self.refresh_tokens = {refresh_token}
        self.jwt_public_key, self.rotate = jwt_public_key, rotate
        self.lifetime_calls, self.lifetime_seconds = lifetime_calls, lifetime_seconds
        self.sessions: dict[str, Session] = {}
        self.issued: Counter[str] = Counter()  # tokens issued per flow
        self.refused: Counter[str] = Counter()  # token requests refused, per `error`
        self.latest_refresh_token = refresh_token

    # -- sessions
    def session(self, request: Request) -> Session | None:
        """The live session of the request's bearer token, counting this call; None if none."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        found = self.sessions.get(token) if scheme.lower() in ("bearer", "oauth") else None
        if found is None or found.expired:
            return None
        too_old = self.lifetime_seconds is not None and (
            time.monotonic() - found.started >= self.lifetime_seconds
        )
        if too_old or (self.lifetime_calls is not None and found.calls >= self.lifetime_calls):
            found.expired = True
            return None
        found.calls += 1
        return found

    def expire_all(self) -> int:
        live = [s for s in self.sessions.values() if not s.expired]
        for session in live:
            session.expired = True
        return len(live)

    # -- the token endpoint
    async def token(self, request: Request) -> Response:
        fields = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        grant = fields.get("grant_type", "")
        try:
            if grant == "refresh_token":
                self._client(request, fields)
                extra = self._refresh(fields)
            elif grant == JWT_GRANT:
                self._jwt(request, fields.get("assertion", ""))
                extra = {}
            elif grant == "client_credentials":
                self._client(request, fields)
                extra = {}
            else:
                raise OAuthError("unsupported_grant_type", "grant type not supported")
        except OAuthError as exc:
            self.refused[exc.error] += 1
            return exc.response()
        return JSONResponse(self._issue(request, grant, extra))

    def _client(self, request: Request, fields: dict[str, str]) -> None:
        client_id, secret = fields.get("client_id"), fields.get("client_secret")
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                client_id, _, secret = base64.b64decode(credential).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                client_id = secret = None
        if client_id != self.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if not secret or not hmac.compare_digest(secret, self.client_secret):
            raise OAuthError("invalid_client", "invalid client credentials")

    def _refresh(self, fields: dict[str, str]) -> dict[str, str]:
        given = fields.get("refresh_token", "")
        if given not in self.refresh_tokens:
            raise OAuthError("invalid_grant", "expired access/refresh token")
        if not self.rotate:
            return {}
        self.refresh_tokens.discard(given)
        fresh = f"5Aep861{secrets.token_urlsafe(48)}"
        self.refresh_tokens.add(fresh)
        self.latest_refresh_token = fresh
        self.issued["rotated_refresh_token"] += 1
        return {"refresh_token": fresh}

    def _jwt(self, request: Request, assertion: str) -> None:
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise OAuthError("invalid_grant", "invalid assertion") from None
        if header.get("alg") != "RS256":
            raise OAuthError("invalid_grant", "invalid assertion")
        if self.jwt_public_key:
            try:
                jwt.decode(assertion, self.jwt_public_key, algorithms=["RS256"],
                           options={"verify_aud": False, "verify_exp": False})  # fmt: skip
            except jwt.PyJWTError:
                raise OAuthError("invalid_grant", "invalid assertion") from None
        if claims.get("iss") != self.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        audiences = claims.get("aud")
        audiences = audiences if isinstance(audiences, list) else [audiences]
        if not any(a in (*LOGIN_AUDIENCES, base_url(request)) for a in audiences):
            raise OAuthError("invalid_grant", "audience is invalid")
        exp = _expiry(claims.get("exp"))
        now = time.time()
        if exp is None or exp <= now or exp > now + JWT_MAX_AHEAD:
            raise OAuthError("invalid_grant", "invalid assertion expiration")
        if claims.get("sub") != self.username:
            raise OAuthError("invalid_grant", "user hasn't approved this consumer")

    def _issue(self, request: Request, grant: str, extra: dict[str, str]) -> dict[str, Any]:
        flow = {JWT_GRANT: "jwt"}.get(grant, grant)
        token = f"{ORG_ID[:15]}!AR{secrets.token_urlsafe(60)}"
        self.sessions[token] = Session(flow, time.monotonic())
        self.issued[flow] += 1
        issued_at = str(int(time.time() * 1000))
        identity = f"{base_url(request)}/id/{ORG_ID}/{USER_ID}"
        digest = hmac.new(self.client_secret.encode(), (identity + issued_at).encode(),
                          hashlib.sha256).digest()  # fmt: skip
        scope = {"jwt": "api", "client_credentials": "api"}.get(flow, "api refresh_token")
        return {
            "access_token": token,
            "instance_url": instance_url(request),
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": base64.b64encode(digest).decode(),
            "scope": scope,
            **extra,
        }

    def state(self) -> dict[str, Any]:
        return {"issued": dict(self.issued), "refused": dict(self.refused),
                "live_sessions": sum(1 for s in self.sessions.values() if not s.expired),
                "refresh_tokens": len(self.refresh_tokens)}  # fmt: skip
