"""The pipeline: every step from a source to a CRM, one plain function each.

    pull.py       pull a source: each stream from its cursor, each page stored with its cursor
    score.py      score the leads that changed (the engine in `scoring`, the rows here)
    plan.py       the outbox's planning: which leads' mapped values a destination lacks
    delivery.py   send what is due in batches and record each record's outcome
    actions.py    `on_qualified:` actions once a lead crosses the qualified threshold
    outbox.py     push a destination (plan → deliver → act), and what waits in the outbox
    run.py        the one path: pull or leads handed over → score → push to every destination
    analytics.py  reports, backtests and the predictive model on stored data

The jobs (`core.jobs.actors`) wrap these steps; the CLI and the webhook call them directly.
"""
