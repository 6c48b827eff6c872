"""Playbooks: YAML jobs (nightly backup, daily inspection) and scripted emergency drills."""

from canteen_ops.playbooks.model import Playbook, Step, load_playbook

__all__ = ["Playbook", "Step", "load_playbook"]
