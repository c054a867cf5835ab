"""Fault injection around any sandbox ASGI app: what a flaky network and a flaky vendor do.

    app = FaultInjector(create_app(world), seed=7, rate_limit=0.05, server_error=0.05,
                        timeout=0.02, drop=0.02, truncate=0.03, timeout_delay=1.5)
    with serve(app) as base_url: ...

Each vendor request draws once from a seeded generator and gets at most one fault:

    rate_limit     429 with `Retry-After` (`retry_after` seconds), the app is not called
    server_error   500, the app is not called
    timeout        the answer is held `timeout_delay` seconds (longer than the client's timeout),
                   then the app runs: the work may happen although the client gave up
    drop           the app runs, then the connection is closed without an answer (the client
                   sees a RemoteProtocolError); the work happened, the client never learns it
    truncate       the app runs; a 2xx answer is cut in half, with a matching Content-Length,
                   so the client reads a well-framed body that is not JSON

The same seed and the same sequence of requests give the same faults. Rates (0..1) are set at
construction, with `configure(...)` (`reseed(n)` restarts the generator), or at runtime over
HTTP; `script(*kinds)` makes the next requests get exactly these faults, in order, before the
random draws go on:

    GET  /__faults                   {"seed", "rates", "injected": {kind: n}, "requests"}
    POST /__faults {"seed"?: 1, "rate_limit"?: 0.1, …, "script"?: ["drop"]}
                                     change the rates (and reseed), queue scripted faults

Requests under `/__faults` and the sandboxes' own `/__sandbox` paths are never faulted.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

KINDS = ("rate_limit", "server_error", "timeout", "drop", "truncate")
CONTROL_PATH = "/__faults"
EXEMPT = (CONTROL_PATH, "/__sandbox")


class FaultInjector:
    """ASGI middleware answering a seeded share of requests with faults (see the module doc).

    Parameters:
        app: the sandbox app (or a hub of sandboxes).
        seed: the generator's seed.
        rate_limit, server_error, timeout, drop, truncate: the share of requests (0..1) given
            each fault; their sum must not exceed 1.
        timeout_delay: how long a `timeout` fault holds the answer, in seconds.
        latency: seconds every faultable request is held first (a slow vendor).
        retry_after: the `Retry-After` of a 429, in seconds.
        exempt: path prefixes (after any mount prefix) that are never faulted.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        seed: int = 0,
        timeout_delay: float = 2.0,
        latency: float = 0.0,
        retry_after: float = 0.0,
        exempt: tuple[str, ...] = EXEMPT,
        **rates: float,
    ) -> None:
        self.app = app
        self.timeout_delay, self.retry_after, self.exempt = timeout_delay, retry_after, exempt
        self.latency = latency
        self.rates: dict[str, float] = dict.fromkeys(KINDS, 0.0)
        self.injected: Counter[str] = Counter()
        self.requests = 0
        self._script: list[str] = []
        self._lock = threading.Lock()
        self.seed = seed
        self._rng = random.Random(seed)
        self.configure(**rates)

    def configure(self, **rates: float) -> None:
        """Change some rates (the others stay)."""
        unknown = set(rates) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kind(s): {', '.join(sorted(unknown))}")
        merged = {**self.rates, **{k: float(v) for k, v in rates.items()}}
        if any(not 0 <= v <= 1 for v in merged.values()) or sum(merged.values()) > 1 + 1e-9:
            raise ValueError(f"fault rates must be in 0..1 and sum to at most 1: {merged}")
        with self._lock:
            self.rates = merged

    def reseed(self, seed: int) -> None:
        """Restart the generator: the same requests from here get the same faults."""
        with self._lock:
            self.seed, self._rng = seed, random.Random(seed)

    def script(self, *kinds: str) -> None:
        """The next requests get these faults, one each, in order (then the draws go on)."""
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kind(s): {', '.join(sorted(unknown))}")
        with self._lock:
            self._script.extend(kinds)

    def off(self) -> None:
        """No more faults, scripted or drawn (the counters stay)."""
        self.configure(**dict.fromkeys(KINDS, 0.0))
        with self._lock:
            self._script.clear()

    def state(self) -> dict[str, Any]:
        return {"seed": self.seed, "rates": dict(self.rates), "injected": dict(self.injected),
                "requests": self.requests}  # fmt: skip

    def draw(self) -> str | None:
        """The fault for the next request, or None."""
        with self._lock:
            self.requests += 1
            if self._script:
                kind = self._script.pop(0)
                self.injected[kind] += 1
                return kind
            roll, edge = self._rng.random(), 0.0
            for kind in KINDS:
                edge += self.rates[kind]
                if roll < edge:
                    self.injected[kind] += 1
                    return kind
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path.rstrip("/") == CONTROL_PATH:
            await self._control(scope, receive, send)
            return
        relative = path.removeprefix(scope.get("root_path", ""))
        if any(p in path or p in relative for p in self.exempt):
            await self.app(scope, receive, send)
            return
        kind = self.draw()
        if self.latency:
            await asyncio.sleep(self.latency)
        if kind is None:
            await self.app(scope, receive, send)
        elif kind == "rate_limit":
            headers = [(b"retry-after", f"{self.retry_after:g}".encode())]
            await _plain(send, 429, b"429 Too Many Requests (injected)", headers)
        elif kind == "server_error":
            await _plain(send, 500, b"500 Internal Server Error (injected)")
        elif kind == "timeout":
            await asyncio.sleep(self.timeout_delay)
            await self.app(scope, receive, send)
        elif kind == "drop":
            await self._drop(scope, receive, send)
        else:
            await self._truncate(scope, receive, send)

    async def _drop(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def discard(message: Message) -> None:
            pass

        await self.app(scope, receive, discard)
        # Headers that promise a body that never comes: the server closes the connection
        # ("ASGI callable returned without completing response"), mid-answer for the client.
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"1000")]})  # fmt: skip

    async def _truncate(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message = {}
        body = bytearray()

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))

        await self.app(scope, receive, capture)
        status = int(start.get("status", 500))
        if 200 <= status < 300 and len(body) > 1:
            body = body[: len(body) // 2]
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": bytes(body)})

    async def _control(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "POST":
            raw = bytearray()
            while True:
                message = await receive()
                raw.extend(message.get("body", b""))
                if not message.get("more_body"):
                    break
            try:
                changes = json.loads(raw or b"{}")
                seed = changes.pop("seed", None)
                self.script(*changes.pop("script", []))
                self.configure(**changes)
                if seed is not None:
                    self.reseed(int(seed))
            except (ValueError, TypeError, AttributeError) as exc:
                await _plain(send, 400, str(exc).encode())
                return
        body = json.dumps(self.state()).encode()
        await _plain(send, 200, body, [(b"content-type", b"application/json")])


async def _plain(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    all_headers = [(b"content-length", str(len(body)).encode()), *(headers or [])]
    if not any(k == b"content-type" for k, _ in all_headers):
        all_headers.append((b"content-type", b"text/plain; charset=utf-8"))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})
