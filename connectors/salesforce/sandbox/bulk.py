"""Bulk API 2.0 ingest jobs in the sandbox (shared/api/salesforce.md §4).

    POST  /jobs/ingest                       create (Open); `contentUrl` is where the CSV goes
    PUT   /jobs/ingest/{id}/batches          text/csv upload → 201
    PATCH /jobs/ingest/{id}                  {"state": "UploadComplete"} starts it, or "Aborted"
    GET   /jobs/ingest/{id}                  InProgress for `polls` reads, then JobComplete/Failed
    GET   /jobs/ingest/{id}/successfulResults|failedResults|unprocessedrecords   CSV
    DELETE /jobs/ingest/{id}

A header naming a field Lead does not have fails the whole job (`InvalidBatch : Field name not
found`); otherwise each row is checked like an sObject Collections record, and the failed ones
come back with `sf__Error` as `CODE:message:fields --`.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.salesforce.sandbox.data import Org, Record, stamp
from connectors.salesforce.sandbox.schema import USER_ID
from connectors.salesforce.sandbox.writes import Operation, check

OPERATIONS = ("insert", "update", "upsert", "delete")
DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^",
              "BACKQUOTE": "`"}  # fmt: skip


class BulkError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Job:
    id: str
    object: str
    operation: Operation
    version: str
    created: datetime
    external_id: str | None = None
    line_ending: str = "LF"
    delimiter: str = "COMMA"
    state: str = "Open"
    uploads: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    succeeded: list[list[str]] = field(default_factory=list)
    failed: list[list[str]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)
    polls_left: int = 0
    error: str = ""
    modified: datetime | None = None

    def info(self, full: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "operation": self.operation, "object": self.object,
            "createdById": USER_ID, "createdDate": stamp(self.created),
            "systemModstamp": stamp(self.modified or self.created), "state": self.state,
            "concurrencyMode": "Parallel", "contentType": "CSV",
            "apiVersion": float(self.version.lstrip("v")), "jobType": "V2Ingest",
            "lineEnding": self.line_ending, "columnDelimiter": self.delimiter,
        }  # fmt: skip
        if self.external_id:
            out["externalIdFieldName"] = self.external_id
        if self.state == "Open":
            out["contentUrl"] = f"services/data/{self.version}/jobs/ingest/{self.id}/batches"
        if full:
            done = self.state in ("JobComplete", "Failed")
            out.update(
                numberRecordsProcessed=len(self.succeeded) + len(self.failed) if done else 0,
                numberRecordsFailed=len(self.failed) if done else 0, retries=0,
                totalProcessingTime=40 if done else 0, apiActiveProcessingTime=30 if done else 0,
                apexProcessingTime=0,
            )  # fmt: skip
            if self.error:
                out["errorMessage"] = self.error
        return out


class Bulk:
    """The org's ingest jobs; `polls` is how many status reads see InProgress before the end."""

    def __init__(self, org: Org, polls: int = 1) -> None:
        self.org, self.polls = org, polls
        self.jobs: dict[str, Job] = {}

    def create(self, body: Any, version: str) -> Job:
        if not isinstance(body, dict):
            raise BulkError(400, "JSON_PARSER_ERROR", "the request body must be a JSON object")
        obj = self.org.schema.object(str(body.get("object", "")))
        if obj is None:
            raise BulkError(400, "INVALIDENTITY", f"Entity '{body.get('object')}' is not "
                            "supported by the Bulk API.")  # fmt: skip
        operation = body.get("operation")
        if operation not in OPERATIONS:
            raise BulkError(400, "INVALIDJOB", f"Invalid job operation: {operation}")
        external = body.get("externalIdFieldName")
        if operation == "upsert":
            f = self.org.schema.field(obj, str(external or ""))
            if f is None or not (f.external_id or f.name == "Id"):
                raise BulkError(400, "INVALIDJOB", f"External ID field {external!r} is not an "
                                f"External ID or indexed field for {obj}")  # fmt: skip
        if body.get("contentType", "CSV") != "CSV":
            raise BulkError(400, "INVALIDJOB", "contentType must be CSV")
        delimiter = str(body.get("columnDelimiter", "COMMA"))
        ending = str(body.get("lineEnding", "LF"))
        if delimiter not in DELIMITERS or ending not in ("LF", "CRLF"):
            raise BulkError(400, "INVALIDJOB", "unknown columnDelimiter or lineEnding")
        now = self.org.clock()
        job = Job(self.org.new_id("Job"), obj, operation, version, now, external, ending, delimiter)
        self.jobs[job.id] = job
        return job

    def get(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise BulkError(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    def upload(self, job: Job, body: bytes, content_type: str) -> None:
        if job.state != "Open":
            raise BulkError(400, "INVALIDJOBSTATE", f"Job {job.id} is not open for uploads "
                            f"(state {job.state})")  # fmt: skip
        if not content_type.startswith("text/csv"):
            raise BulkError(400, "INVALIDCONTENTTYPE", "Content-Type must be text/csv")
        if job.uploads:
            raise BulkError(400, "INVALIDJOBSTATE", "Found multiple contents for job: <"
                            f"{job.id}>, please 'Close' / 'Abort' / 'Delete' the current Job "
                            "then create a new Job and make sure you only do 'PUT' once on a "
                            "given Job.")  # fmt: skip
        job.uploads.append(body.decode("utf-8"))

    def set_state(self, job: Job, state: Any) -> None:
        if state == "Aborted" and job.state in ("Open", "UploadComplete", "InProgress"):
            job.state = "Aborted"
        elif state == "UploadComplete" and job.state == "Open":
            job.state, job.polls_left = "UploadComplete", self.polls
            self._process(job)
        else:
            raise BulkError(400, "INVALIDJOBSTATE", f"Cannot move job {job.id} from "
                            f"{job.state} to {state}")  # fmt: skip
        job.modified = self.org.clock()

    def status(self, job: Job) -> dict[str, Any]:
        """The job info; a finished job shows InProgress for its first `polls` reads."""
        shown = job.state
        if job.state in ("JobComplete", "Failed") and job.polls_left > 0:
            job.polls_left -= 1
            shown = "InProgress"
        info = job.info(full=True)
        if shown != job.state:
            info.update(state=shown, numberRecordsProcessed=0, numberRecordsFailed=0)
            info.pop("errorMessage", None)
        return info

    def _process(self, job: Job) -> None:
        sep = DELIMITERS[job.delimiter]
        rows = list(csv.reader(io.StringIO("".join(job.uploads)), delimiter=sep))
        if not rows:
            job.state, job.error = "Failed", "InvalidBatch : No data found in the batch"
            return
        job.columns, data = rows[0], [r for r in rows[1:] if r]
        unknown = [c for c in job.columns if self.org.schema.field(job.object, c) is None]
        if unknown:
            job.state, job.error = "Failed", f"InvalidBatch : Field name not found : {unknown[0]}"
            job.unprocessed = data
            return
        for row in data:
            values: Record = dict(zip(job.columns, row, strict=False))
            outcome = check(self.org, job.object, job.operation, values, text=True,
                            external_id=job.external_id)  # fmt: skip
            if outcome.ok and outcome.apply is not None:
                outcome.apply()
                job.succeeded.append([outcome.record_id or "", str(outcome.created).lower(), *row])
            else:
                error = "; ".join(f"{e['statusCode']}:{e['message']}:{','.join(e['fields'])} --"
                                  for e in outcome.errors)  # fmt: skip
                job.failed.append([outcome.record_id or "", error, *row])
        job.state = "JobComplete"

    def results(self, job: Job, kind: str) -> str:
        if job.state not in ("JobComplete", "Failed", "Aborted"):
            raise BulkError(400, "INVALIDJOBSTATE", f"Job {job.id} is not finished "
                            f"(state {job.state})")  # fmt: skip
        buffer = io.StringIO()
        out = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
        if kind == "successfulResults":
            out.writerow(["sf__Id", "sf__Created", *job.columns])
            out.writerows(job.succeeded)
        elif kind == "failedResults":
            out.writerow(["sf__Id", "sf__Error", *job.columns])
            out.writerows(job.failed)
        else:
            out.writerow(job.columns)
            out.writerows(job.unprocessed)
        return buffer.getvalue()
