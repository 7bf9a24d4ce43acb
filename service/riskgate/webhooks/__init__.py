"""Webhooks: subscriptions, signed delivery from the outbox, retries, replay, SSRF guard."""
