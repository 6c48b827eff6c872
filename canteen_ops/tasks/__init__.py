"""Backup, snapshot and firmware tasks."""
