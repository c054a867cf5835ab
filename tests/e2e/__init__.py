"""The reliability suite: faults injected into every vendor sandbox, processes SIGKILLed mid-pull
and mid-push, hostile payloads, webhook attacks, secret canaries and bad hub files.

    LEADHUB_TEST_DATABASE_URL=postgresql://… pytest tests/e2e

Shared pieces are in `harness.py`; `runner.py` is the process the crash tests kill.
"""
