"""Flywheel's tests: one folder per stage, with the helpers they share in support/."""
