"""Inventory: YAML loading with line-numbered validation, inheritance, selection, secrets."""

from canteen_ops.inventory.loader import load_inventory
from canteen_ops.inventory.model import Credentials, Device, Inventory, Policy, School
from canteen_ops.inventory.select import Selection

__all__ = ["load_inventory", "Credentials", "Device", "Inventory", "Policy", "School", "Selection"]
