"""The jobs: the pipeline's steps as dramatiq actors, for embedded threads or Redis workers.

broker.py       settings, `configure()` (the broker is built then, not at import), the
                process's store and hub, shared locks
actors.py       pull, score, rescore_all, decay, push; embedded workers
pending.py      coalesced requests: at most one queued message per actor and target
intake.py       webhook leads queued in Redis, stored by the intake job in pages
middleware.py   late ticks, busy locks, coalescing, retries that wait out rate limits
scheduler.py    the one active scheduler that enqueues each source's cron schedule
locks.py        short leases (Redis or the store) renewed by a heartbeat
deadletters.py  messages that failed for good, listed and requeued by `leadhub dlq`
"""
