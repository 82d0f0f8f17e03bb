"""Tests of versioning: table rollback through Dagster, and the CLI commands for it."""
