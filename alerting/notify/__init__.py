"""Notifications: rendering, routing, the outbox and channels."""
