"""Idempotency keys: a Redis lease as the fast path, a PostgreSQL record as the guarantee."""
