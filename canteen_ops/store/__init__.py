"""Maintenance log (SQLite) and the backup file store."""
