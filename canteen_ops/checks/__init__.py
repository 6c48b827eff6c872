"""Diagnostics: each check is a small function (device, driver, policy) → Result."""
