"""Audit: the append-only, hash-chained log and its verification."""
