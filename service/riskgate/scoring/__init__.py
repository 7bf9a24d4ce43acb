"""Scoring: signals in, a deterministic decision out."""
