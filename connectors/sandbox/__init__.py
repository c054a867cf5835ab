"""Shared pieces of the vendor sandboxes: the deterministic synthetic world they are seeded from."""
