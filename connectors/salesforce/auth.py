"""Access tokens for Salesforce calls: refresh-token, JWT bearer or client-credentials flow.

Every flow posts a form to `{login_url}/services/oauth2/token` and gets back an `access_token`
and the `instance_url` every API call then goes to. Salesforce gives no `expires_in`: a token is
used until a call answers 401 `INVALID_SESSION_ID` (or Bulk's 400 `InvalidSessionId`), then a new
one is fetched once and the call retried once (`SalesforceClient.call`). A refresh token that the
endpoint rotates is written to the token file at once (atomically, mode 0600) and used from then
on, until the configured one changes.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import jwt

from connectors.base.state import RefreshTokenFile
from connectors.salesforce.settings import SalesforceSettings
from core.errors import AuthError, ConfigError, HTTPError, RequestRejected, SourceError
from core.http import HttpClient, register_secret

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_LIFETIME_SECONDS = 180  # Salesforce accepts an `exp` at most 3 minutes ahead


@dataclass(frozen=True)
class Session:
    """One access token and the org's API host; `user_id` is the user the token acts as (the
    last part of the token answer's `id` URL), when given."""

    access_token: str
    instance_url: str
    user_id: str | None = None


_USER_ID = re.compile(r"005[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?")


def _fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def oauth_reason(body: str) -> str:
    """`error: error_description` of a token-endpoint error body, else its start."""
    try:
        found = json.loads(body)
    except ValueError:
        return " ".join(body.split())[:200] or "no reason given"
    if isinstance(found, dict) and (found.get("error") or found.get("error_description")):
        error, text = found.get("error") or "error", found.get("error_description") or ""
        return f"{error}: {text}".rstrip(": ")
    return " ".join(body.split())[:200] or "no reason given"


class SalesforceAuth:
    """Sessions from one of the three flows; thread-safe; persists rotated refresh tokens.

    Parameters:
        settings: the validated block.
        http: the client that calls the token endpoint.
        where: the block's path in the hub file (`sources.sf`), to name settings; the client
            puts the connector's name before the errors raised here.
        token_file: where a rotated refresh token is kept (shared by the blocks that use it).
        base_dir: what a relative `private_key_path` is relative to (the hub file's folder).
        clock: wall-clock seconds (the JWT `exp`; tests).
    """

    def __init__(
        self,
        settings: SalesforceSettings,
        http: HttpClient,
        where: str,
        token_file: Path,
        *,
        base_dir: Path = Path("."),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings, self.http, self.where = settings, http, where
        self.token_file, self.base_dir, self._clock = token_file, base_dir, clock
        self._lock = threading.Lock()
        self._session: Session | None = None
        self.refreshes = 0
        for secret in (settings.client_secret, settings.private_key):
            if secret is not None and secret.get_secret_value():
                register_secret(secret.get_secret_value())
        self.refresh_token: str | None = None
        self._configured = ""
        if settings.auth_flow == "refresh_token" and settings.refresh_token is not None:
            configured = settings.refresh_token.get_secret_value()
            self._configured = _fingerprint(configured)
            self.refresh_token = self._saved_refresh_token() or configured
            register_secret(configured)
            register_secret(self.refresh_token)

    @property
    def setting(self) -> str:
        """The credential setting to fix when the token endpoint refuses."""
        flow = self.settings.auth_flow
        name = {"refresh_token": "refresh_token", "jwt": "private_key", "client_credentials":
                "client_secret"}[flow]  # fmt: skip
        return f"{self.where}.{name}"

    def session(self) -> Session:
        """The current session, fetching one on first use."""
        with self._lock:
            if self._session is None:
                self._session = self._fetch()
            return self._session

    def renew(self, stale: Session) -> Session:
        """A new session after `stale` was refused; one fetch even if several threads ask."""
        with self._lock:
            if self._session is None or self._session == stale:
                self._session = self._fetch()
            return self._session

    # -- the flows -------------------------------------------------------------------------------

    def _form(self) -> dict[str, str]:
        s = self.settings
        secret = s.client_secret.get_secret_value() if s.client_secret else ""
        if s.auth_flow == "refresh_token":
            # Another block (or process) may have rotated the shared token since it was read.
            self.refresh_token = self._saved_refresh_token() or self.refresh_token
            assert self.refresh_token is not None  # the settings require one for this flow
            form = {"grant_type": "refresh_token", "client_id": s.client_id,
                    "refresh_token": self.refresh_token}  # fmt: skip
            return {**form, "client_secret": secret} if secret else form
        if s.auth_flow == "client_credentials":
            return {"grant_type": "client_credentials", "client_id": s.client_id,
                    "client_secret": secret}  # fmt: skip
        return {"grant_type": JWT_GRANT, "assertion": self.assertion()}

    def assertion(self) -> str:
        """A JWT signed with the configured key: iss client id, sub user, aud login server."""
        s = self.settings
        now = int(self._clock())
        claims = {"iss": s.client_id, "sub": s.username, "aud": s.audience,
                  "exp": now + JWT_LIFETIME_SECONDS}  # fmt: skip
        try:
            token = jwt.encode(claims, self._private_key(), algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise ConfigError(
                f"{self.where}.private_key: could not sign the JWT with it ({type(exc).__name__}); "
                "give the PEM text of the RSA private key whose certificate the app holds"
            ) from None
        register_secret(token)
        return token

    def _private_key(self) -> str:
        s = self.settings
        if s.private_key is not None and s.private_key.get_secret_value().strip():
            text = s.private_key.get_secret_value().strip()
            # A PEM passed through an environment variable often arrives with `\n` escapes.
            return text.replace("\\n", "\n") if "\n" not in text else text
        assert s.private_key_path is not None  # the settings require one of the two
        path = Path(s.private_key_path).expanduser()
        path = path if path.is_absolute() else self.base_dir / path
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"{self.where}.private_key_path: cannot read {str(path)!r} ({exc.strerror})"
            ) from None
        register_secret(text)
        return text

    def _fetch(self) -> Session:
        try:
            body = self.http.json("POST", self.settings.token_url, data=self._form())
        except (AuthError, RequestRejected) as exc:
            self._refused(exc)
        if not isinstance(body, dict):
            raise AuthError("the token endpoint answered without a JSON object")
        access, instance = body.get("access_token"), body.get("instance_url")
        if not isinstance(access, str) or not access:
            raise AuthError(
                f"the token endpoint answered without an access_token; check `{self.setting}`"
            )
        register_secret(access)
        if not isinstance(instance, str) or urlsplit(instance).scheme not in ("http", "https"):
            raise SourceError(
                f"{self.where}: the token endpoint gave no usable instance_url ({instance!r})"
            )
        self.refreshes += 1
        rotated = body.get("refresh_token")
        if (
            self.settings.auth_flow == "refresh_token"
            and isinstance(rotated, str)
            and rotated
            and rotated != self.refresh_token
        ):
            register_secret(rotated)
            self.refresh_token = rotated
            self._save(rotated)
        identity = body.get("id")
        user = str(identity).rstrip("/").rsplit("/", 1)[-1] if isinstance(identity, str) else ""
        return Session(access, instance.rstrip("/"), user if _USER_ID.fullmatch(user) else None)

    def _refused(self, exc: HTTPError) -> NoReturn:
        if exc.status in (404, 405):
            raise AuthError(
                f"there is no OAuth token endpoint at {self.settings.token_url} "
                f"({exc.status}); check `{self.where}.login_url` (e.g. "
                "https://login.salesforce.com or your My Domain)",
                status=exc.status,
                body=exc.body,
            ) from None
        reason = oauth_reason(exc.body)
        flow = self.settings.auth_flow
        advice = {
            "refresh_token": "authorize the connected app again and set the new refresh token",
            "jwt": "check `client_id`, `username`, the certificate uploaded to the app and that "
            "the user is pre-authorized; the key signs with",
            "client_credentials": "check `client_id`, that the app enables the client "
            "credentials flow with a Run As user, and",
        }[flow]
        raise AuthError(
            f"the token endpoint {self.settings.token_url} refused the {flow} flow "
            f"({exc.status}: {reason}); {advice} `{self.setting}`",
            status=exc.status,
            body=exc.body,
        ) from None

    # -- the rotated refresh token ---------------------------------------------------------------

    def _saved_refresh_token(self) -> str | None:
        """The rotated token on file, unless the configured one changed since it was saved."""
        return RefreshTokenFile(self.token_file, self._configured).load()

    def _save(self, refresh_token: str) -> None:
        RefreshTokenFile(self.token_file, self._configured).save(refresh_token)


def default_token_file(base_dir: Path, settings: SalesforceSettings) -> Path:
    """`.leadhub/salesforce-<fingerprint>-oauth.json` next to the hub file.

    The name is a fingerprint of the app, the login host and the configured refresh token, so a
    source and a destination that share one refresh token share its rotations too (with rotation
    on, the token one block used stops working for the other).
    """
    configured = settings.refresh_token.get_secret_value() if settings.refresh_token else ""
    key = _fingerprint(f"{settings.login_url} {settings.client_id} {configured}")[:16]
    return base_dir / ".leadhub" / f"salesforce-{key}-oauth.json"
