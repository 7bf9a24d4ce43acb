"""Accounts: opened with a pseudonymous customer reference, read back as statements."""
