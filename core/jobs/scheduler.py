"""The scheduler: one active process enqueues each source's cron `schedule`, and the daily decay.

Any number of `leadhub scheduler` processes may run; the one holding the `scheduler` lock (Redis,
or a lease in the store when embedded) enqueues, the others stay idle and retry the lock every
ttl/5. When the active one stops it releases the lock (or, killed, lets it expire), so a standby
takes over within the lock's ttl plus one poll.

Periodic messages are coalesced twice: ticks missed while the scheduler was down or busy fire
once, and a tick that finds its source's previous pull still queued sends nothing (that pull,
when it runs, reads everything new). They carry `late_after` = one period: a pull that waited
longer runs late, once, and says so (`core.jobs.middleware.LateTicks`); it is never dropped.

A schedule is a crontab line in UTC (`*/15 * * * *`), or six fields with seconds first
(`*/10 * * * * *`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from core.config import HubConfig, load_hub
from core.errors import ConfigError, LeadhubError
from core.jobs.broker import request
from core.jobs.locks import Lock

log = logging.getLogger("leadhub.scheduler")
Enqueue = Callable[[str, str | None, int], None]
"""enqueue(actor, argument, late_after_ms): send one periodic message."""


def parse_schedule(text: str) -> CronTrigger:
    """A CronTrigger in UTC from five crontab fields, or six with seconds first."""
    fields = text.split()
    try:
        if len(fields) == 5:
            return CronTrigger.from_crontab(text, timezone=UTC)
        if len(fields) == 6:
            second, minute, hour, day, month, weekday = fields
            return CronTrigger(
                second=second,
                minute=minute,
                hour=hour,
                day=day,
                month=month,
                day_of_week=weekday,
                timezone=UTC,
            )
    except ValueError as exc:
        raise ConfigError(f"schedule {text!r}: {exc}") from exc
    raise ConfigError(f"schedule {text!r}: expected 5 cron fields (or 6, seconds first)")


def next_run(schedule: str, now: datetime | None = None) -> datetime | None:
    """When `schedule` fires next after `now`."""
    trigger = parse_schedule(schedule)
    after = (now or datetime.now(UTC)) + timedelta(microseconds=1)
    fires: datetime | None = trigger.get_next_fire_time(None, after)
    return fires


def period(trigger: CronTrigger, now: datetime | None = None) -> timedelta:
    """The gap between the next two firings (at least one second)."""
    first = trigger.get_next_fire_time(None, now or datetime.now(UTC))
    if first is None:
        return timedelta(days=1)
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1))
    gap = (second - first) if second else timedelta(days=1)
    return max(gap, timedelta(seconds=1))


def send_periodic(actor: str, argument: str | None, late_after_ms: int, scheduled_by: str) -> None:
    """Ask for one periodic run of the actor named `actor`, unless one is still queued.

    Only the name is needed: the workers that run it declare the actor, this process need not.
    """
    args = () if argument is None else (argument,)
    if not request(actor, *args, late_after=late_after_ms, scheduled_by=scheduled_by):
        log.info("%s %s is still queued from an earlier tick; it covers this one",
                 actor, argument or "")  # fmt: skip


class HubScheduler:
    """Holds the scheduler lock and, while it does, enqueues what the hub file schedules.

    Parameters:
        hub_path: the hub file; read again when it changes.
        lock: the `scheduler` lock (its ttl sets the poll interval, ttl/5).
        decay_schedule: when the daily decay pass runs (None: never).
        enqueue: how to send (default: `send_periodic` with this scheduler's lock token).
    """

    def __init__(
        self,
        hub_path: Path,
        lock: Lock,
        *,
        decay_schedule: str | None = "0 3 * * *",
        enqueue: Enqueue | None = None,
    ) -> None:
        self.hub_path = hub_path
        self.lock = lock
        self.decay_schedule = decay_schedule
        self.enqueue: Enqueue = enqueue or (
            lambda actor, arg, age: send_periodic(actor, arg, age, lock.token)
        )
        self.poll = lock.ttl / 5
        self.active = False
        self._mtime: int | None = None
        self._aps = BackgroundScheduler(timezone=UTC)

    def run(self, stop: threading.Event) -> None:
        """Poll until `stop` is set; then stop enqueuing and release the lock."""
        self._aps.start(paused=True)
        try:
            while not stop.is_set():
                self.step()
                stop.wait(self.poll)
        finally:
            self._aps.shutdown(wait=False)
            if self.active:
                self.lock.release()
                log.info("scheduler stopped; lock released")

    def step(self) -> None:
        """Take the lock if it is free, or keep it; follow changes to the hub file."""
        if not self.active:
            if self.lock.acquire():
                self.active = True
                log.info("this is now the active scheduler (%s)", self.lock.token)
                self._load_jobs(force=True)
                self._aps.resume()
            return
        if not self.lock.renew():
            log.error("lost the scheduler lock to %s; standing by", self.lock.holder())
            self.active = False
            self._aps.pause()
            self._aps.remove_all_jobs()
            return
        self._load_jobs()

    def _load_jobs(self, force: bool = False) -> None:
        mtime = self.hub_path.stat().st_mtime_ns if self.hub_path.exists() else -1
        if not force and mtime == self._mtime:
            return
        self._mtime = mtime
        try:
            hub = load_hub(self.hub_path)
        except LeadhubError as exc:
            log.error("hub file unreadable, keeping the current schedule: %s", exc)
            return
        self._aps.remove_all_jobs()
        for actor, argument, schedule in self.planned(hub):
            self._add(actor, argument, schedule)

    def planned(self, hub: HubConfig) -> list[tuple[str, str | None, str]]:
        """(actor, argument, schedule) for every periodic message of `hub`."""
        plan: list[tuple[str, str | None, str]] = [
            ("pull", name, source.schedule)
            for name, source in hub.sources.items()
            if source.schedule and source.enabled
        ]
        if self.decay_schedule and hub.models:
            plan.append(("decay", None, self.decay_schedule))
        return plan

    def _add(self, actor: str, argument: str | None, schedule: str) -> None:
        try:
            trigger = parse_schedule(schedule)
        except ConfigError as exc:
            log.error("%s %s: %s; not scheduled", actor, argument or "", exc)
            return
        gap = period(trigger)
        late_after = int(gap.total_seconds() * 1000)
        self._aps.add_job(
            self.enqueue,
            trigger,
            args=(actor, argument, late_after),
            id=f"{actor}:{argument or ''}",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=max(1, int(gap.total_seconds())),
            replace_existing=True,
        )
        log.info("scheduled %s %s: %s", actor, argument or "", schedule)
