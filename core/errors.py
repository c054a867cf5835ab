"""The one error tree of leadhub.

    LeadhubError
    ├── ConfigError            bad hub file, model file or setting (exit code 2)
    ├── SourceError            a connector could not read
    │   └── PaginationError    a vendor returned a cursor it already returned
    ├── HTTPError              an HTTP call failed after classification
    │   ├── AuthError          401/403: the credentials are wrong or expired
    │   ├── RequestRejected    400/404/422: the request itself is wrong; not retried
    │   ├── RateLimited        429 or a vendor throttling code; carries retry_after
    │   └── TransientError     5xx, timeouts, dropped connections; retried
    ├── RecordError            one record failed validation (goes to quarantine)
    └── RejectedRecord         a destination refused one record, with the vendor's reason

Every message says what happened, to which record or setting, and what to do about it.
Secrets never appear in messages: `core.http` redacts them before raising.
"""

from __future__ import annotations


class LeadhubError(Exception):
    """Base of every error leadhub raises on purpose."""

    exit_code: int = 1


class ConfigError(LeadhubError):
    """The hub file, a model file or a setting is invalid. Exit code 2."""

    exit_code = 2


class SourceError(LeadhubError):
    """A source could not be read."""


class PaginationError(SourceError):
    """The vendor returned a cursor it had already returned (would loop forever)."""


class HTTPError(LeadhubError):
    """An HTTP call failed. `status` is the HTTP status, or None for transport failures."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class AuthError(HTTPError):
    """The credentials were refused; renew or fix the named setting."""


class RequestRejected(HTTPError):
    """The vendor refused the request itself (400/404/422); retrying would not help."""


class RateLimited(HTTPError):
    """The vendor asked us to slow down; `retry_after` is the wait in seconds, if known."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 429,
        body: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, body=body)
        self.retry_after = retry_after


class TransientError(HTTPError):
    """A failure that may pass: 5xx, timeouts, dropped connections."""


class RecordError(LeadhubError):
    """One record is invalid. `record` names it, `field` the offending field."""

    def __init__(self, message: str, *, record: str = "", field: str = "") -> None:
        super().__init__(message)
        self.record = record
        self.field = field


class RejectedRecord(LeadhubError):
    """A destination refused one record; `reason` is the vendor's own text."""

    def __init__(self, reason: str, *, record: str = "") -> None:
        super().__init__(f"{record}: {reason}" if record else reason)
        self.reason = reason
        self.record = record
