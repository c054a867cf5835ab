"""Locks with a time to live: one pull per source, one active scheduler.

Two backends with one shape: `RedisLock` (`SET NX PX` with a random token, renewed and released by
Lua scripts that check the token) when jobs run on Redis, and `StoreLease` (a row in the store's
`meta` table, updated by compare-and-set) in embedded mode. The lease is short (`ttl`, a few
seconds) and a heartbeat thread of the holder renews it every ttl/3 while the holder lives. A
holder that dies (even by SIGKILL) simply stops renewing; its lock expires within `ttl` seconds
and the next caller takes it. `lock_states` lists the locks held, and which of them look stale: a
lock that missed its renewals, or whose holder on this host is no longer running.

    >>> with held(RedisLock(client, "pull:crm", ttl=30)) as lock:   # doctest: +SKIP
    ...     if lock.acquired:
    ...         do_the_pull()
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import sqlalchemy as sa

from core.store.store import META, Store

if TYPE_CHECKING:
    import redis

log = logging.getLogger("leadhub.locks")

# Both scripts compare the token first, so a holder whose lock expired and was taken by someone
# else can never extend or delete the new holder's lock.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def new_token() -> str:
    """A token that also tells an operator who holds the lock: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class Lock(Protocol):
    """A named lock with a time to live; every method is safe to call when not held."""

    name: str
    ttl: float
    token: str

    def acquire(self) -> bool: ...

    def renew(self) -> bool: ...

    def release(self) -> None: ...

    def holder(self) -> str | None: ...


class RedisLock:
    """`SET key token NX PX ttl`; renew and release only while the token still matches.

    Parameters:
        client: a redis client.
        name: the lock's name; the key is `leadhub:lock:<name>`.
        ttl: seconds the lock lives without renewal.
    """

    def __init__(self, client: redis.Redis[bytes], name: str, ttl: float, token: str | None = None):
        self.client = client
        self.name = name
        self.key = f"leadhub:lock:{name}"
        self.ttl = ttl
        self.token = token or new_token()
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def acquire(self) -> bool:
        return bool(self.client.set(self.key, self.token, nx=True, px=_ms(self.ttl)))

    def renew(self) -> bool:
        return bool(self._renew(keys=[self.key], args=[self.token, _ms(self.ttl)]))

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.token])

    def holder(self) -> str | None:
        value = self.client.get(self.key)
        return value.decode() if isinstance(value, bytes) else value


class StoreLease:
    """A lease row in the store's `meta` table: `{"token": …, "expires": epoch seconds}`.

    Every change is a compare-and-set on the whole value (`UPDATE … WHERE value = old`), which is
    atomic on SQLite and PostgreSQL alike, so two processes can never both take the lease.
    """

    def __init__(self, store: Store, name: str, ttl: float, token: str | None = None):
        self.table = META
        self.store = store
        self.name = name
        self.key = f"lease:{name}"
        self.ttl = ttl
        self.token = token or new_token()
        self._value: str | None = None

    def _new_value(self) -> str:
        return json.dumps({"token": self.token, "expires": time.time() + self.ttl})

    def _swap(self, old: str | None, new: str | None) -> bool:
        """Replace `old` by `new` (None: insert / delete) only if nobody changed it meanwhile."""
        t = self.table
        if old is None:
            try:
                with self.store.begin() as conn:
                    conn.execute(t.insert().values(key=self.key, value=new))
                return True
            except sa.exc.IntegrityError:
                return False
        with self.store.begin() as conn:
            where = sa.and_(t.c.key == self.key, t.c.value == old)
            if new is None:
                return conn.execute(t.delete().where(where)).rowcount == 1
            return conn.execute(t.update().where(where).values(value=new)).rowcount == 1

    def _current(self) -> str | None:
        t = self.table
        with self.store.engine.connect() as conn:
            return conn.execute(sa.select(t.c.value).where(t.c.key == self.key)).scalar()

    def acquire(self) -> bool:
        current = self._current()
        if current is not None and json.loads(current)["expires"] > time.time():
            return False
        value = self._new_value()
        if self._swap(current, value):
            self._value = value
            return True
        return False

    def renew(self) -> bool:
        if self._value is None:
            return False
        value = self._new_value()
        if self._swap(self._value, value):
            self._value = value
            return True
        self._value = None
        return False

    def release(self) -> None:
        if self._value is not None:
            self._swap(self._value, None)
            self._value = None

    def holder(self) -> str | None:
        current = self._current()
        if current is None:
            return None
        data = json.loads(current)
        return str(data["token"]) if data["expires"] > time.time() else None


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


# -- what is held ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockState:
    """One held lock: its holder's token (host:pid:random), seconds left, and whether it is stale
    (its holder missed a renewal, or is a process of this host that no longer runs)."""

    name: str
    holder: str
    expires_in: float
    stale: bool

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "holder": self.holder,
                "expires_in": round(self.expires_in, 1), "stale": self.stale}  # fmt: skip


def lock_states(backend: redis.Redis[bytes] | Store, ttl: float) -> list[LockState]:
    """Every lock held now, by name: in Redis (a client) or the store's leases (a Store).

    `ttl` is the lease the holders use: one renewed on time has more than 2/3 of it left.
    """
    if isinstance(backend, Store):
        with backend.engine.connect() as conn:
            rows = conn.execute(sa.select(META.c.key, META.c.value).where(
                META.c.key.startswith("lease:"))).all()  # fmt: skip
        now = time.time()
        held = []
        for key, value in rows:
            data = json.loads(value)
            held.append((key.removeprefix("lease:"), str(data["token"]), data["expires"] - now))
    else:
        held = []
        for key in sorted(backend.scan_iter(match="leadhub:lock:*")):
            token, left = backend.get(key), backend.pttl(key)
            if token is None or left is None or left < 0:
                continue  # expired between the scan and the read
            name = key.decode().removeprefix("leadhub:lock:")
            held.append((name, token.decode(), left / 1000))
    return [
        LockState(name, token, left, _stale(token, left, ttl))
        for name, token, left in sorted(held)
        if left > 0
    ]


def _stale(token: str, left: float, ttl: float) -> bool:
    # Renewed every ttl/3: under 1/3 left means two renewals were missed.
    if left < ttl / 3:
        return True
    host, _, rest = token.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return not _running(int(pid))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process its parent has not reaped yet is a zombie: not running
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True


@dataclass
class Held:
    """What `held` yields: whether the lock was taken, and whether it was lost while held."""

    lock: Lock
    acquired: bool
    lost: threading.Event


@contextmanager
def held(lock: Lock) -> Iterator[Held]:
    """Try the lock once; while held, renew it every ttl/3 in a thread; release it on exit."""
    if not lock.acquire():
        yield Held(lock, False, threading.Event())
        return
    stop, lost = threading.Event(), threading.Event()
    renewer = threading.Thread(
        target=_keep_renewed, args=(lock, stop, lost), name=f"renew {lock.name}", daemon=True
    )
    renewer.start()
    try:
        yield Held(lock, True, lost)
    finally:
        stop.set()
        renewer.join()
        lock.release()


def _keep_renewed(lock: Lock, stop: threading.Event, lost: threading.Event) -> None:
    while not stop.wait(lock.ttl / 3):
        try:
            ok = lock.renew()
        except Exception:  # a blip in Redis or the database: try again next interval
            log.warning("could not renew lock %s; retrying", lock.name, exc_info=True)
            continue
        if not ok:
            # Someone else holds it now (we were paused past the ttl): say so loudly, the
            # work in progress is no longer exclusive.
            log.error("lost lock %s (expired before renewal)", lock.name)
            lost.set()
            return
