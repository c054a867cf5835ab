"""What `leadhub sync` and `leadhub push` do (every source pulled, every destination pushed, for
the hub file and store of LEADHUB_CONFIG and LEADHUB_DATABASE_URL), in processes the crash
tests SIGKILL.

    python -m tests.e2e.runner pull|push     one run in this process
    python -m tests.e2e.runner fork          a fork server: reads `pull`/`push` lines on stdin,
                                             forks one child per line, writes "started <pid>"
                                             and, once it ends, "exited <pid> <status>"

The fork server pays the imports once, so ten kills cost ten runs rather than ten interpreter
start-ups; each child opens its own store, as a fresh `leadhub sync` would.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def run(step: str) -> int:
    from core.config import load_hub
    from core.pipeline import outbox
    from core.pipeline import pull as pipeline
    from core.settings import Settings
    from core.store.store import Store

    settings = Settings()
    hub, store = load_hub(Path(settings.config)), Store(settings.database_url, migrate=False)
    ok = True
    if step == "pull":
        for name in hub.sources:
            ok = pipeline.pull(store, hub, name).ok and ok
    else:
        for name in hub.destinations:
            ok = outbox.push_configured(store, hub, name).ok and ok
    store.close()
    return 0 if ok else 1


def fork_server() -> int:
    from connectors.base import load_connectors
    from core.pipeline import outbox  # noqa: F401  (imported once, before any fork)
    from core.pipeline import pull as pipeline  # noqa: F401  (imported once, before any fork)

    load_connectors()
    for line in sys.stdin:
        step = line.strip()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = run(step)
            finally:
                os._exit(code)
        print(f"started {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exited {pid} {status}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(fork_server() if sys.argv[1] == "fork" else run(sys.argv[1]))
