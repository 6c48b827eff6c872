"""Alerts to the people on duty: targets (config), message text (messages), the outbox (outbox)."""
