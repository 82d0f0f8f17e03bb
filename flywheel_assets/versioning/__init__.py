"""Versions and rollback: history, restore with exclusions, re-admission, and table upkeep."""
