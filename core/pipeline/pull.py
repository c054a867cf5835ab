"""Pulling a source: every stream read from its saved cursor, each page stored with its cursor.

`pull` opens the source named in the hub file; `pull_source` reads an opened one. A vendor failure
ends the pull with a `failed` run and a result that carries the exception; the pages already stored
stay, and the next pull resumes after the last one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from connectors.base import registry
from connectors.base.contract import Source, SourceContext
from core.config import HubConfig
from core.errors import LeadhubError
from core.store.ingest import PageCounts
from core.store.store import Store

log = logging.getLogger("leadhub.pipeline")
# After each page: the stream, the page's counts, and the records the stream still holds when
# its source can tell (None when it cannot).
Progress = Callable[[str, PageCounts, int | None], None]


@dataclass(frozen=True)
class PullResult:
    source: str
    run_id: int
    counts: PageCounts
    exception: LeadhubError | None = None  # what stopped the pull, as raised

    @property
    def ok(self) -> bool:
        return self.exception is None

    @property
    def error(self) -> str | None:
        """What stopped the pull, for display."""
        return None if self.exception is None else str(self.exception)


def open_source(
    hub: HubConfig, source_name: str, clock: Callable[[], float] | None = None
) -> Source:
    """The source named `source_name` in the hub file, opened by its connector (`clock`: what
    its read windows are measured from, when not real time; see `SourceContext`)."""
    config = hub.source(source_name)
    return registry.open_source(
        config.connector, config.settings, SourceContext(source_name, hub.base_dir, clock)
    )


def pull(
    store: Store,
    hub: HubConfig,
    source_name: str,
    *,
    full: bool = False,
    progress: Progress | None = None,
) -> PullResult:
    """Pull the source named `source_name` in the hub file."""
    source = open_source(hub, source_name)
    return pull_source(
        store, source_name, source, priority=hub.field_priority, full=full, progress=progress
    )


def pull_source(
    store: Store,
    source_name: str,
    source: Source,
    *,
    priority: Mapping[str, Sequence[str]] | None = None,
    full: bool = False,
    progress: Progress | None = None,
) -> PullResult:
    """Read every stream of `source` from its saved cursor; each page commits with its cursor.

    A failure stops the run (recorded in `sync_run` with the error) and keeps every page already
    stored; the next run resumes after the last committed page.
    """
    if full:
        store.reset_cursors(source_name)
    run_id = store.start_run("pull", source_name)
    total = PageCounts()
    try:
        for stream in source.streams():
            cursor = store.get_cursor(source_name, stream.name)
            for page in stream.read(cursor):
                counts = store.save_page(
                    source_name, stream.name, page.items, page.cursor, priority
                )
                total.add(counts)
                if progress:
                    progress(stream.name, counts, page.left)
    except LeadhubError as exc:
        store.finish_run(run_id, total, "failed", str(exc))
        log.error("pull %s failed: %s", source_name, exc)
        return PullResult(source_name, run_id, total, exc)
    except Exception as exc:
        store.finish_run(run_id, total, "failed", f"{type(exc).__name__}: {exc}")
        raise
    store.finish_run(run_id, total, "ok")
    return PullResult(source_name, run_id, total)
