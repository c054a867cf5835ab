"""The sandbox org's schema: the standard fields of the objects the connector reads, the score
fields an admin adds to Lead, and `describe` in Salesforce's shape.

Field names, types and properties follow shared/api/salesforce.md §3 and §7. Custom fields are
chosen per sandbox (`custom_fields`), so a missing one can be tested.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

USER_ID = "0055g00000SANDBXAA"  # the integration user the sandbox's tokens log in as
REP_ID = "0055g00000SLSREPAA"  # a sales rep: who made the seeded records and later edits
ORG_ID = "00D5g00000SANDBXAA"
PREFIXES = {"Lead": "00Q", "Contact": "003", "Account": "001", "Campaign": "701",
            "CampaignMember": "00v", "Task": "00T", "Event": "00U", "Opportunity": "006",
            "User": "005", "CustomField": "00N", "Job": "750", "Query": "01g"}  # fmt: skip
LEAD_STATUSES = ("Open - Not Contacted", "Working - Contacted", "Closed - Converted",
                 "Closed - Not Converted")  # fmt: skip


@dataclass(frozen=True)
class Field:
    """One field as `describe` reports it. `references` names the objects a reference may hold."""

    name: str
    type: str = "string"
    label: str = ""
    length: int = 0
    precision: int = 0
    scale: int = 0
    updateable: bool = True
    createable: bool = True
    nillable: bool = True
    custom: bool = False
    external_id: bool = False
    references: tuple[str, ...] = ()

    @property
    def relationship(self) -> str | None:
        """`WhoId` → `Who`, `ConvertedOpportunityId` → `ConvertedOpportunity`."""
        if self.type != "reference" or not self.name.endswith("Id"):
            return None
        return self.name[:-2] or None

    def describe(self, picklists: dict[str, tuple[str, ...]]) -> dict[str, Any]:
        values = picklists.get(self.name, ())
        return {
            "name": self.name, "label": self.label or _label(self.name), "type": self.type,
            "length": self.length, "precision": self.precision, "scale": self.scale,
            "digits": 0, "byteLength": self.length * 3, "custom": self.custom,
            "updateable": self.updateable, "createable": self.createable,
            "nillable": self.nillable, "externalId": self.external_id, "unique": False,
            "idLookup": self.name in ("Id", "Email") or self.external_id,
            "filterable": True, "sortable": self.type != "textarea", "calculated": False,
            "defaultedOnCreate": not self.nillable and not self.createable,
            "referenceTo": list(self.references), "relationshipName": self.relationship,
            "picklistValues": [{"active": True, "defaultValue": i == 0, "label": v, "value": v,
                                "validFor": None} for i, v in enumerate(values)],
            "soapType": SOAP_TYPES.get(self.type, "xsd:string"),
        }  # fmt: skip


SOAP_TYPES = {"id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean",
              "double": "xsd:double", "currency": "xsd:double", "percent": "xsd:double",
              "int": "xsd:int", "date": "xsd:date", "datetime": "xsd:dateTime"}  # fmt: skip


def _label(name: str) -> str:
    base = name.removesuffix("__c").removesuffix("Id").replace("_", " ")
    return "".join(f" {c}" if c.isupper() and i else c for i, c in enumerate(base)).strip()


def _ro(name: str, kind: str = "string", **extra: Any) -> Field:
    return Field(name, kind, updateable=False, createable=False, **extra)


def _ref(name: str, *targets: str, writable: bool = True) -> Field:
    return Field(name, "reference", length=18, references=targets, updateable=writable,
                 createable=writable)  # fmt: skip


SYSTEM = (
    _ro("Id", "id", length=18, nillable=False),
    _ro("IsDeleted", "boolean", nillable=False),
    _ref("OwnerId", "User"),
    _ro("CreatedDate", "datetime", nillable=False),
    _ro("CreatedById", "reference", references=("User",)),
    _ro("LastModifiedDate", "datetime", nillable=False),
    _ro("LastModifiedById", "reference", references=("User",)),
    _ro("SystemModstamp", "datetime", nillable=False),
)
PERSON = (
    Field("FirstName", length=40),
    Field("LastName", length=80, nillable=False),
    _ro("Name", length=121),
    Field("Title", length=128),
    Field("Email", "email", length=80),
    Field("Phone", "phone", length=40),
    Field("MobilePhone", "phone", length=40),
    Field("LeadSource", "picklist", length=255),
    Field("HasOptedOutOfEmail", "boolean", nillable=False),
    Field("DoNotCall", "boolean", nillable=False),
    Field("EmailBouncedDate", "datetime"),
    _ro("LastActivityDate", "date"),
)
ACTIVITY = (
    _ref("WhoId", "Lead", "Contact"),
    _ref("WhatId", "Account", "Opportunity", "Campaign"),
    Field("Subject", "combobox", length=255),
    Field("ActivityDate", "date"),
    Field("Description", "textarea", length=32000),
    Field("Type", "picklist", length=40),
    _ro("IsArchived", "boolean", nillable=False),
)
OBJECTS: dict[str, tuple[Field, ...]] = {
    "Lead": (
        *SYSTEM,
        *PERSON,
        _ref("MasterRecordId", "Lead", writable=False),
        Field("Company", length=255, nillable=False),
        Field("Website", "url", length=255),
        Field("Street", "textarea", length=255),
        Field("City", length=40),
        Field("State", length=80),
        Field("PostalCode", length=20),
        Field("Country", length=80),
        Field("Industry", "picklist", length=255),
        Field("Rating", "picklist", length=255),
        Field("Status", "picklist", length=255, nillable=False),
        Field("AnnualRevenue", "currency", precision=18),
        Field("NumberOfEmployees", "int"),
        _ro("IsConverted", "boolean", nillable=False),
        _ro("ConvertedDate", "date"),
        _ro("ConvertedAccountId", "reference", length=18, references=("Account",)),
        _ro("ConvertedContactId", "reference", length=18, references=("Contact",)),
        _ro("ConvertedOpportunityId", "reference", length=18, references=("Opportunity",)),
    ),
    "Contact": (
        *SYSTEM,
        *PERSON,
        _ref("MasterRecordId", "Contact", writable=False),
        _ref("AccountId", "Account"),
        Field("MailingCity", length=40),
        Field("MailingCountry", length=80),
    ),
    "Account": (
        *SYSTEM,
        Field("Name", length=255, nillable=False),
        Field("Industry", "picklist", length=255),
        Field("NumberOfEmployees", "int"),
        Field("BillingCountry", length=80),
        Field("Website", "url", length=255),
    ),
    "Campaign": (
        *SYSTEM,
        Field("Name", length=80, nillable=False),
        Field("Type", "picklist", length=255),
        Field("Status", "picklist", length=255),
        Field("StartDate", "date"),
        Field("IsActive", "boolean", nillable=False),
    ),
    "CampaignMember": (
        *SYSTEM,
        _ref("CampaignId", "Campaign"),
        _ref("LeadId", "Lead"),
        _ref("ContactId", "Contact"),
        _ro("LeadOrContactId", "reference", length=18, references=("Lead", "Contact")),
        Field("Status", "picklist", length=40),
        _ro("HasResponded", "boolean", nillable=False),
        _ro("FirstRespondedDate", "date"),
    ),
    "Task": (
        *SYSTEM,
        *ACTIVITY,
        Field("Status", "picklist", length=255, nillable=False),
        Field("Priority", "picklist", length=40, nillable=False),
        _ro("IsClosed", "boolean", nillable=False),
        Field("TaskSubtype", "picklist", length=255),
        Field("CallType", "picklist", length=40),
        Field("CallDurationInSeconds", "int"),
        Field("CallDisposition", length=255),
    ),
    "Event": (
        *SYSTEM,
        *ACTIVITY,
        Field("ActivityDateTime", "datetime"),
        Field("StartDateTime", "datetime"),
        Field("EndDateTime", "datetime"),
        Field("DurationInMinutes", "int"),
        Field("EventSubtype", "picklist", length=255),
    ),
    "Opportunity": (
        *SYSTEM,
        _ref("AccountId", "Account"),
        _ref("ContactId", "Contact"),
        Field("Name", length=120, nillable=False),
        Field("StageName", "picklist", length=255, nillable=False),
        Field("Amount", "currency", precision=18, scale=2),
        Field("CloseDate", "date", nillable=False),
        Field("Probability", "percent", precision=3),
        Field("LeadSource", "picklist", length=255),
        _ro("IsClosed", "boolean", nillable=False),
        _ro("IsWon", "boolean", nillable=False),
    ),
}
PICKLISTS: dict[str, dict[str, tuple[str, ...]]] = {
    "Lead": {"Status": LEAD_STATUSES, "Rating": ("Hot", "Warm", "Cold"),
             "LeadSource": ("Web", "Advertisement", "Partner Referral", "Purchased List",
                            "Trade Show", "Other")},
    "Opportunity": {"StageName": ("Prospecting", "Qualification", "Proposal/Price Quote",
                                  "Negotiation/Review", "Closed Won", "Closed Lost")},
    "Task": {"Status": ("Not Started", "In Progress", "Completed"),
             "Priority": ("High", "Normal", "Low"), "TaskSubtype": ("Task", "Email", "Call"),
             "CallType": ("Internal", "Inbound", "Outbound")},
    "CampaignMember": {"Status": ("Sent", "Responded", "Registered", "Attended")},
}  # fmt: skip

# The score fields an admin adds to Lead for the connector (shared/api/salesforce.md §3, §5).
SCORE_FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        Field("Lead_Score__c", "double", "Lead Score", precision=3, custom=True),
        Field("Lead_Tier__c", "string", "Lead Tier", length=20, custom=True),
        Field("Lead_Grade__c", "string", "Lead Grade", length=10, custom=True),
        Field("Lead_Qualified__c", "boolean", "Lead Qualified", custom=True, nillable=False),
        Field("Lead_Score_Reason__c", "string", "Lead Score Reason", length=255, custom=True),
        Field("Lead_Score_Updated__c", "datetime", "Lead Score Updated", custom=True),
    )
}
DEFAULT_CUSTOM_FIELDS = tuple(SCORE_FIELDS)


def custom_field(name: str, *, read_only: bool = False, **metadata: Any) -> Field:
    """The definition of custom field `name` on Lead: a known score field, else from `metadata`
    (Tooling API `Metadata`: type Number/Text/Checkbox/DateTime/LongTextArea, length, …)."""
    known = SCORE_FIELDS.get(name)
    if known is None:
        kind = {"Number": "double", "Checkbox": "boolean", "DateTime": "datetime", "Date": "date",
                "LongTextArea": "textarea", "Percent": "percent", "Currency": "currency"}.get(
            str(metadata.get("type", "Text")), "string")  # fmt: skip
        known = Field(name, kind, str(metadata.get("label") or _label(name)),
                      length=int(metadata.get("length") or (255 if kind == "string" else 0)),
                      precision=int(metadata.get("precision") or (18 if kind == "double" else 0)),
                      scale=int(metadata.get("scale") or 0), custom=True,
                      external_id=bool(metadata.get("externalId")),
                      nillable=kind != "boolean")  # fmt: skip
    return replace(known, updateable=not read_only, createable=not read_only)


class Schema:
    """The org's objects and fields; field lookups are case-insensitive, as in SOQL."""

    def __init__(self, custom: dict[str, Field]) -> None:
        self.fields: dict[str, dict[str, Field]] = {
            obj: {f.name.lower(): f for f in fields} for obj, fields in OBJECTS.items()
        }
        for field in custom.values():
            self.fields["Lead"][field.name.lower()] = field
        self.objects = {name.lower(): name for name in self.fields}

    def object(self, name: str) -> str | None:
        return self.objects.get(name.lower())

    def field(self, obj: str, name: str) -> Field | None:
        return self.fields[obj].get(name.lower())

    def add(self, obj: str, field: Field) -> None:
        self.fields[obj][field.name.lower()] = field

    def relation(self, obj: str, name: str) -> Field | None:
        """The reference field behind relationship `name` (`Who` → `WhoId`)."""
        found = self.fields[obj].get(f"{name.lower()}id")
        return found if found is not None and found.type in ("reference", "id") else None

    def summary(self, obj: str, version: str) -> dict[str, Any]:
        """The object as Describe Global (`GET /sobjects`) lists it."""
        base = f"/services/data/{version}/sobjects/{obj}"
        return {
            "name": obj, "label": _label(obj), "labelPlural": f"{_label(obj)}s",
            "keyPrefix": PREFIXES[obj], "custom": False, "createable": True, "updateable": True,
            "deletable": True, "queryable": True, "searchable": True, "retrieveable": True,
            "layoutable": True, "replicateable": True, "triggerable": True,
            "urls": {"sobject": base, "describe": f"{base}/describe",
                     "rowTemplate": f"{base}/{{ID}}"},
        }  # fmt: skip

    def describe(self, obj: str, version: str, omit_custom: bool = False) -> dict[str, Any]:
        picklists = PICKLISTS.get(obj, {})
        fields = [f.describe(picklists) for f in self.fields[obj].values()
                  if not (omit_custom and f.custom)]  # fmt: skip
        base = f"/services/data/{version}/sobjects/{obj}"
        return {
            "name": obj, "label": _label(obj), "labelPlural": f"{_label(obj)}s",
            "keyPrefix": PREFIXES[obj], "custom": False, "createable": True, "updateable": True,
            "deletable": True, "queryable": True, "searchable": True, "retrieveable": True,
            "fields": fields, "childRelationships": [], "recordTypeInfos": [],
            "urls": {"sobject": base, "describe": f"{base}/describe",
                     "rowTemplate": f"{base}/{{ID}}"},
        }  # fmt: skip
