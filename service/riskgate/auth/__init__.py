"""Clients and their credentials: OAuth2 client credentials, JWT access tokens, API keys."""
