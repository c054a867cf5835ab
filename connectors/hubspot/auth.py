"""Credentials for HubSpot calls: a static token, or OAuth 2 access tokens kept fresh.

OAuth access tokens last 30 minutes (`expires_in`); a new one is fetched `refresh_margin_seconds`
before the old one expires, never in reaction to a 401 alone (HubSpot: a 401 "is not a valid
indicator that a new access token must be retrieved") — except once, when the 401 says the token
expired (`EXPIRED_AUTHENTICATION`), as peers see mid-sync. A refresh token the endpoint rotates
is written to the token file at once (atomically, mode 0600), so the next run uses it.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from connectors.base.state import RefreshTokenFile
from connectors.hubspot.settings import OAuthSettings
from core.errors import AuthError, HTTPError, RequestRejected
from core.http import HttpClient, RetryPolicy, register_secret


class Credentials(Protocol):
    """Where the Authorization header comes from, and which setting to fix when it is refused."""

    setting: str

    def header(self) -> str:
        """The `Authorization` header value for the next request."""
        ...

    def renew(self, error: AuthError) -> bool:
        """After a 401: True when fresh credentials were obtained (worth one retry)."""
        ...


class StaticToken:
    """A private-app token or service key, sent as `<scheme> <token>`."""

    def __init__(self, token: str, scheme: str, setting: str) -> None:
        self._value = f"{scheme} {token}".strip()
        self.setting = setting
        register_secret(token)

    def header(self) -> str:
        return self._value

    def renew(self, error: AuthError) -> bool:
        return False


def _fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class OAuthTokens:
    """Access tokens from a refresh token; thread-safe; persists rotated refresh tokens.

    Parameters:
        oauth: the block's `oauth` settings.
        http: the client for the token endpoint (no rate budget: it has its own limits).
        token_file: where a rotated refresh token is kept.
        where: the block's path in the hub file, e.g. `sources.crm`, for messages.
        clock: wall-clock seconds (tests).
    """

    def __init__(
        self,
        oauth: OAuthSettings,
        http: HttpClient,
        token_file: Path,
        where: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.oauth, self.http, self.token_file = oauth, http, token_file
        self.setting = f"{where}.oauth.refresh_token"
        self._clock = clock
        self._lock = threading.Lock()
        self._access: str | None = None
        self._expires_at = 0.0
        configured = oauth.refresh_token.get_secret_value()
        self._configured = _fingerprint(configured)
        self.refresh_token = self._saved_refresh_token() or configured
        register_secret(oauth.client_secret.get_secret_value())
        register_secret(self.refresh_token)

    def header(self) -> str:
        with self._lock:
            if (
                self._access is None
                or self._clock() >= self._expires_at - self.oauth.refresh_margin_seconds
            ):
                self._refresh()
            assert self._access is not None
            return f"Bearer {self._access}"

    def renew(self, error: AuthError) -> bool:
        if error.status != 401 or "EXPIRED_AUTHENTICATION" not in error.body:
            return False
        with self._lock:
            self._refresh()
        return True

    def _refresh(self) -> None:
        form = {
            "grant_type": "refresh_token",
            "client_id": self.oauth.client_id,
            "client_secret": self.oauth.client_secret.get_secret_value(),
            "refresh_token": self.refresh_token,
        }
        try:
            body = self.http.json("POST", self.oauth.token_path, data=form)
        except (AuthError, RequestRejected) as exc:
            raise AuthError(
                f"the OAuth refresh token was refused ({exc.status}: {_reason(exc)}); re-authorize "
                f"the app and set `{self.setting}`",
                status=exc.status,
                body=exc.body,
            ) from None
        access, rotated = body.get("access_token"), body.get("refresh_token")
        if not isinstance(access, str) or not access:
            raise AuthError(
                f"the token endpoint answered without an access_token; check `{self.setting}`"
            )
        register_secret(access)
        self._access = access
        self._expires_at = self._clock() + float(body.get("expires_in") or 1800)
        if isinstance(rotated, str) and rotated and rotated != self.refresh_token:
            register_secret(rotated)
            self.refresh_token = rotated
            self._save(rotated)

    def _saved_refresh_token(self) -> str | None:
        """The rotated token on file, unless the configured one changed since it was saved."""
        return RefreshTokenFile(self.token_file, self._configured).load()

    def _save(self, refresh_token: str) -> None:
        RefreshTokenFile(self.token_file, self._configured).save(refresh_token)


def _reason(exc: HTTPError) -> str:
    try:
        body = json.loads(exc.body)
    except ValueError:
        return "no reason given"
    if isinstance(body, dict):
        return str(
            body.get("error_description") or body.get("message") or body.get("error") or body
        )
    return "no reason given"


TOKEN_RETRY = RetryPolicy(max_attempts=4, backoff_base=1.0, backoff_cap=10, max_total_wait=60)
