"""The request-conformance checker itself, on a made-up operation table."""

from __future__ import annotations

from connectors.sandbox.conformance import Operation, Param, check_request, recording

OPS = (
    Operation(
        name="contacts.list",
        method="GET",
        path="/crm/v3/objects/contacts",
        query=(
            Param("limit", "integer", maximum=100),
            Param("archived", "boolean"),
            Param("properties", repeated=True),
        ),
    ),
    Operation(
        name="contacts.batch_update",
        method="POST",
        path="/crm/v3/objects/contacts/batch/update",
        body={
            "type": "object",
            "required": ["inputs"],
            "properties": {
                "inputs": {
                    "type": "array",
                    "maxItems": 2,
                    "items": {"type": "object", "required": ["id", "properties"]},
                }
            },
        },
    ),
    Operation(name="contacts.get", method="GET", path="/crm/v3/objects/contacts/{contactId}"),
)


def test_a_conforming_request_has_no_problem_and_is_recorded() -> None:
    with recording() as seen:
        q = [("limit", "100"), ("properties", "email"), ("properties", "firstname")]
        assert check_request(OPS, "GET", "/crm/v3/objects/contacts", q, vendor="hubspot") == []
        assert check_request(OPS, "GET", "/crm/v3/objects/contacts/42", []) == []
    assert [(c.vendor, c.operation, c.problems) for c in seen] == [
        ("hubspot", "contacts.list", ()),
        ("", "contacts.get", ()),
    ]


def test_query_types_limits_repeats_and_unknown_names_are_problems() -> None:
    q = [("limit", "101"), ("archived", "yes"), ("limit", "2"), ("after", "x")]
    problems = check_request(OPS, "GET", "/crm/v3/objects/contacts", q)
    assert "query limit=101 is above 100" in problems
    assert "query archived='yes' is not true or false" in problems
    assert "query limit given 2 times" in problems
    assert "query after is not a parameter of contacts.list" in problems


def test_body_schema_and_undeclared_operations_are_problems() -> None:
    body = {"inputs": [{"id": "1"}, {"id": "2", "properties": {}}, {"id": "3", "properties": {}}]}
    problems = check_request(OPS, "POST", "/crm/v3/objects/contacts/batch/update", [], body)
    assert any(p.startswith("body inputs/0: 'properties' is a required property") for p in problems)
    assert any(p.startswith("body inputs: ") and "too long" in p for p in problems)
    assert check_request(OPS, "DELETE", "/crm/v3/objects/contacts/42", []) == [
        "DELETE /crm/v3/objects/contacts/42 is not an operation the conformance table declares"
    ]
