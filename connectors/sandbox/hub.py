"""All vendor sandboxes on one ASGI app, each under its own path prefix, seeded from one world.

    app, mounted = combined_app(World.build(seed=42, people=500))
    # mounted == {"hubspot": "/hubspot", "salesforce": "/salesforce", ...}

A connector's sandbox is `connectors.<name>.sandbox.create_app(world, **options)`; connectors whose
sandbox is not installed are left out, so the hub serves whatever is there.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route

from connectors.sandbox.world import World

log = logging.getLogger("leadhub.sandbox")
VENDORS = ("hubspot", "salesforce", "facebook_leads", "mailchimp")


def load_sandbox(name: str) -> Any:
    """The `create_app` of connector `name`'s sandbox, or None when it is not installed."""
    try:
        module = importlib.import_module(f"connectors.{name}.sandbox")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith(f"connectors.{name}"):
            return None
        raise
    return getattr(module, "create_app", None)


def vendor_routes(name: str, app: Any) -> list[BaseRoute]:
    """Vendor `name`'s sandbox at `/<name>`, plus the paths its clients call at the host root
    (its package's `HOST_ROOT_PATHS`: Salesforce's `instance_url` is a bare host), passed on with
    the path unchanged."""
    module = importlib.import_module(f"connectors.{name}.sandbox")
    roots = [Route(f"{p}/{{rest:path}}", app) for p in getattr(module, "HOST_ROOT_PATHS", ())]
    return [Mount(f"/{name}", app=app), *roots]


def combined_app(
    world: World, options: dict[str, dict[str, Any]] | None = None
) -> tuple[Any, dict[str, Any]]:
    """One Starlette app with every installed sandbox mounted at `/<vendor>`.

    Returns the app and, per vendor, the sandbox app itself (for tests and the demo to inspect).
    """
    options = options or {}
    routes: list[Any] = []
    apps: dict[str, Any] = {}
    for name in VENDORS:
        create = load_sandbox(name)
        if create is None:
            continue
        apps[name] = create(world, **options.get(name, {}))
        routes.extend(vendor_routes(name, apps[name]))

    async def index(_request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "sandboxes": {n: f"/{n}" for n in apps},
                "people": len(world.people),
                "seed": world.seed,
            }
        )

    return Starlette(routes=[Route("/", index), *routes]), apps
