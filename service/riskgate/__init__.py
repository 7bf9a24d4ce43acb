"""riskgate: deterministic risk decisions, money transactions, audit trail and signed webhooks."""

__version__ = "0.1.0"
