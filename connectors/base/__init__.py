"""The connector contract: what a connector provides and what the hub gives it.

    contract.py   records in (Page, Item, Stream, Source), writes out (WriteItem, Destination),
                  and the Connector protocols an entry point satisfies
    settings.py   the destination block of the hub file (write-back keys, templates)
    paging.py     declared paging: paginators, PagedStream, the bookmark in one place
    registry.py   load_connectors / get_connector / open_source / open_destination
    state.py      private state files beside the hub file (rotated tokens, remembered checks)

Everything a connector needs from the hub is re-exported here.
"""

from connectors.base.contract import (
    Connector,
    ConnectorSettings,
    Cursor,
    Destination,
    DestinationConnector,
    DestinationContext,
    Invalid,
    Item,
    Page,
    QualifiedActions,
    QualifiedItem,
    Source,
    SourceConnector,
    SourceContext,
    Stream,
    WriteItem,
    WriteOutcome,
    http_url,
    json_kind,
)
from connectors.base.registry import (
    get_connector,
    load_connectors,
    open_destination,
    open_source,
    validate_destination,
)
from connectors.base.settings import (
    TEMPLATE_FIELDS,
    WRITEBACK_KEYS,
    DestinationSettings,
    OnQualifiedSettings,
    Output,
    describe,
    render,
)

__all__ = [
    "TEMPLATE_FIELDS",
    "WRITEBACK_KEYS",
    "Connector",
    "ConnectorSettings",
    "Cursor",
    "Destination",
    "DestinationConnector",
    "DestinationContext",
    "DestinationSettings",
    "Invalid",
    "Item",
    "OnQualifiedSettings",
    "Output",
    "Page",
    "QualifiedActions",
    "QualifiedItem",
    "Source",
    "SourceConnector",
    "SourceContext",
    "Stream",
    "WriteItem",
    "WriteOutcome",
    "describe",
    "get_connector",
    "http_url",
    "json_kind",
    "load_connectors",
    "open_destination",
    "open_source",
    "render",
    "validate_destination",
]
