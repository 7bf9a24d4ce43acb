"""Events: scored events read back with their decision and audit trail."""
