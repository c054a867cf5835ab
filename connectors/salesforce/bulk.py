"""Bulk API 2.0 ingest jobs: many records in one job instead of many collection calls.

    POST  jobs/ingest                     {"object", "operation", "contentType": "CSV", …}
    PUT   jobs/ingest/<id>/batches        the CSV (text/csv) → 201
    PATCH jobs/ingest/<id>                {"state": "UploadComplete"}: processing starts
    GET   jobs/ingest/<id>                until JobComplete, Failed or Aborted
    GET   …/successfulResults, …/failedResults (rows in neither are sent again later)

Result rows come back in no particular order: they are matched to the rows sent by `Id` for
updates, and by the values of their columns for inserts. In the CSV, `#N/A` empties a field.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from connectors.salesforce.client import SalesforceClient
from core.errors import SourceError

log = logging.getLogger("leadhub.salesforce.bulk")
NULL = "#N/A"
DONE = ("JobComplete", "Failed", "Aborted")
MAX_UPLOAD_BYTES = 100_000_000  # raw CSV per upload (150 MB once base64-encoded)


@dataclass(frozen=True)
class RowResult:
    """What the job said of one row sent: `status` ok, retry (not processed) or rejected."""

    status: Literal["ok", "retry", "rejected"]
    record_id: str | None = None
    error: str = ""


def csv_value(value: Any) -> str:
    """A value as Bulk API 2.0 CSV text (`#N/A` empties the field)."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def to_csv(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_value(row.get(c)) for c in columns])
    return out.getvalue()


def _cell(value: Any) -> str:
    """A sent value or an echoed CSV cell, comparable (an emptied field reads as "")."""
    text = value if isinstance(value, str) else csv_value(value)
    return "" if text == NULL else text


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


class BulkIngest:
    """Runs ingest jobs for one object through `client`.

    Parameters:
        client: the org's client.
        sobject: the object written (Lead).
        poll_seconds: the wait between status checks.
        timeout_seconds: give up waiting after this long (the rows are then retried later).
        sleep, clock: for tests.
    """

    def __init__(
        self,
        client: SalesforceClient,
        sobject: str,
        *,
        poll_seconds: float = 2.0,
        timeout_seconds: float = 1800.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.sobject = client, sobject
        self.poll_seconds, self.timeout_seconds = poll_seconds, timeout_seconds
        self._sleep, self._clock = sleep, clock
        self.jobs: list[str] = []

    def run(
        self,
        operation: Literal["update", "insert"],
        columns: Sequence[str],
        rows: Sequence[Mapping[str, Any]],
    ) -> list[RowResult]:
        """One result per row of `rows`, in order; one job per ~100 MB of CSV."""
        results: list[RowResult] = []
        start = 0
        while start < len(rows):
            end = self._fit(columns, rows, start)
            results.extend(self._job(operation, columns, rows[start:end]))
            start = end
        return results

    def _fit(self, columns: Sequence[str], rows: Sequence[Mapping[str, Any]], start: int) -> int:
        """The end of the slice from `start` whose CSV stays under the upload limit."""
        size, end = len(to_csv(columns, [])), start
        while end < len(rows):
            size += len(to_csv(columns, [rows[end]])) - len(to_csv(columns, []))
            if size > MAX_UPLOAD_BYTES and end > start:
                break
            end += 1
        return end

    def _job(
        self,
        operation: Literal["update", "insert"],
        columns: Sequence[str],
        rows: Sequence[Mapping[str, Any]],
    ) -> list[RowResult]:
        spec = {"object": self.sobject, "operation": operation, "contentType": "CSV",
                "lineEnding": "LF"}  # fmt: skip
        job = self.client.call("POST", "jobs/ingest", json=spec)
        job_id = str(job.get("id") or "") if isinstance(job, dict) else ""
        if not job_id:
            raise SourceError(f"{self.client.where}: the Bulk API created a job without an id")
        self.jobs.append(job_id)
        content_url = str(job.get("contentUrl") or f"jobs/ingest/{job_id}/batches")
        self.client.request("PUT", content_url, content=to_csv(columns, rows).encode(),
                            headers={"Content-Type": "text/csv"})  # fmt: skip
        self.client.call("PATCH", f"jobs/ingest/{job_id}", json={"state": "UploadComplete"})
        state, info = self._wait(job_id)
        if state not in DONE:
            why = (f"Bulk job {job_id} still {state} after {self.timeout_seconds:.0f} s; "
                   "its rows are sent again at the next push")  # fmt: skip
            return [RowResult("retry", error=why)] * len(rows)
        return self._results(job_id, state, info, columns, rows)

    def _wait(self, job_id: str) -> tuple[str, dict[str, Any]]:
        deadline = self._clock() + self.timeout_seconds
        while True:
            info = self.client.call("GET", f"jobs/ingest/{job_id}")
            info = info if isinstance(info, dict) else {}
            state = str(info.get("state") or "")
            if state in DONE or self._clock() >= deadline:
                return state, info
            self._sleep(self.poll_seconds)

    def _results(
        self,
        job_id: str,
        state: str,
        info: Mapping[str, Any],
        columns: Sequence[str],
        rows: Sequence[Mapping[str, Any]],
    ) -> list[RowResult]:
        """Match the success and failure CSVs to the rows sent; the rest are retried."""
        waiting: dict[tuple[str, ...], list[int]] = {}
        for index, row in enumerate(rows):
            waiting.setdefault(self._key(columns, row), []).append(index)
        found: dict[int, RowResult] = {}

        def settle(result_row: Mapping[str, str], result: RowResult) -> None:
            indexes = waiting.get(self._key(columns, result_row))
            if indexes:
                found[indexes.pop(0)] = result

        for row in self._csv(job_id, "successfulResults"):
            settle(row, RowResult("ok", row.get("sf__Id") or row.get("Id") or None))
        for row in self._csv(job_id, "failedResults"):
            settle(row, RowResult("rejected", row.get("sf__Id") or None, row.get("sf__Error", "")))
        why = (f"Bulk job {job_id} ended {state}: {info.get('errorMessage') or 'not processed'}; "
               "sent again at the next push")  # fmt: skip
        log.info(
            "bulk job %s %s: %s processed, %s failed", job_id, state,
            info.get("numberRecordsProcessed"), info.get("numberRecordsFailed"),
        )  # fmt: skip
        return [found.get(i, RowResult("retry", error=why)) for i in range(len(rows))]

    def _key(self, columns: Sequence[str], row: Mapping[str, Any]) -> tuple[str, ...]:
        if "Id" in columns:
            return (str(row.get("Id") or ""),)
        return tuple(_cell(row.get(c)) for c in columns)

    def _csv(self, job_id: str, part: str) -> list[dict[str, str]]:
        response = self.client.request(
            "GET", f"jobs/ingest/{job_id}/{part}", headers={"Accept": "text/csv"}
        )
        if response.status_code != 200:  # e.g. a redirect: its rows stay unsettled (retried)
            log.warning("bulk job %s: %s answered %s", job_id, part, response.status_code)
            return []
        return read_csv(response.text)
