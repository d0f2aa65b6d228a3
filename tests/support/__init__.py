"""Shared test helpers: loopback fakes (``di``: the DI API; ``notify``: Slack, webhooks,
SMTP) and builders. Fixtures defined here are registered by each folder's conftest.py."""
