"""Device drivers: one interface (base.py), three vendors."""
