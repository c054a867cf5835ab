"""Keeping secrets out of messages and logs: `redact`, `register_secret`, `RedactingFilter`."""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import quote

import httpx

log = logging.getLogger("leadhub.http")

REDACTED = "[redacted]"

# -- redaction -----------------------------------------------------------------------------------

# Shorter values are not credentials, and replacing them would blank out ordinary words.
_MIN_SECRET_LENGTH = 4
_SECRET_PARAMS = (
    "access_token|refresh_token|id_token|client_secret|appsecret_proof|api_key|apikey|key|token"
    "|password|secret"
)
# Narrower for JSON: `"key": …` is an ordinary field name in vendor payloads (merge fields).
_SECRET_JSON_KEYS = (
    "access_token|refresh_token|id_token|client_secret|appsecret_proof|api_key|apikey|password"
)
_CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-auth-token"}
)
_PARAM = re.compile(rf"(?i)(?<![\w-])({_SECRET_PARAMS})=[^&\s\"'<>#]+")
_JSON_FIELD = re.compile(rf'(?i)("(?:{_SECRET_JSON_KEYS})"\s*:\s*")(?:[^"\\]|\\.)*"')
_AUTH_HEADER = re.compile(
    r"(?i)\b((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)"
    r"(?:(bearer|basic|oauth|token|digest)\s+)?[^\s\"',;}]+"
)
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*")
_BASIC = re.compile(r"(?i)\b(basic)\s+([A-Za-z0-9+/]{6,}={0,2})")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@")

_registered: tuple[str, ...] = ()
_registry_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Add a secret value (a token, a password) that every redaction must remove from now on."""
    global _registered
    if len(value) >= _MIN_SECRET_LENGTH:
        with _registry_lock:  # copy-on-write, so readers never see the tuple change under them
            if value not in _registered:
                _registered = (*_registered, value)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace secret values (given here or registered) and credential-shaped text with [redacted].

    Example: `redact("GET /me?access_token=abc123", []) == "GET /me?access_token=[redacted]"`.
    """
    values = {
        variant
        for secret in (*secrets, *_registered)
        if len(secret) >= _MIN_SECRET_LENGTH
        for variant in (secret, quote(secret, safe=""))  # as sent in a query string, too
    }
    for value in sorted(values, key=len, reverse=True):  # longest first: one may contain another
        text = text.replace(value, REDACTED)
    text = _AUTH_HEADER.sub(
        lambda m: m.group(1) + (f"{m.group(2)} " if m.group(2) else "") + REDACTED, text
    )
    text = _BEARER.sub(rf"\1 {REDACTED}", text)
    text = _BASIC.sub(_redact_basic, text)
    text = _PARAM.sub(rf"\1={REDACTED}", text)
    text = _JSON_FIELD.sub(rf'\1{REDACTED}"', text)
    return _USERINFO.sub(rf"\1{REDACTED}@", text)


def _redact_basic(match: re.Match[str]) -> str:
    # Only a real `user:password` pair is a credential; "Basic information" is just English.
    return f"{match.group(1)} {REDACTED}" if _basic_pair(match.group(2)) else match.group(0)


def _basic_pair(encoded: str) -> tuple[str, str] | None:
    try:
        user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def credential_values(headers: httpx.Headers) -> tuple[str, ...]:
    """The secret parts of credential headers, so an echo of them in a body is redacted too."""
    values: list[str] = []
    for name, value in headers.items():
        if name.lower() in _CREDENTIAL_HEADERS:
            scheme, _, credential = value.partition(" ")
            values += [value, credential.strip()]
            pair = _basic_pair(credential.strip()) if scheme.lower() == "basic" else None
            values += [pair[1]] if pair else []
    return tuple(v for v in values if v)


def param_values(url: httpx.URL) -> tuple[str, ...]:
    names = set(_SECRET_PARAMS.split("|"))
    return tuple(v for k, v in url.params.multi_items() if k.lower() in names and v)


class RedactingFilter(logging.Filter):
    """Redacts registered secrets and credential-shaped text from every record it sees.

    A logger's filters see only records created on that logger, so handlers carry one as well.
    """

    def __init__(self, secrets: Iterable[str] = (), name: str = "") -> None:
        super().__init__(name)
        self._secrets = tuple(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is for logging to report, not for us to crash on
            return True
        record.msg, record.args = redact(message, self._secrets), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._secrets)
        return True


_LOG_FILTER = RedactingFilter()
logging.getLogger("leadhub").addFilter(_LOG_FILTER)
log.addFilter(_LOG_FILTER)
# httpx logs every request at INFO with its full URL, query-string tokens included: redacted at
# the source, so no handler (a root handler, an error tracker's) ever receives the raw value.
logging.getLogger("httpx").addFilter(_LOG_FILTER)
