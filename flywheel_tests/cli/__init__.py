"""Tests of the `flywheel` command as a user runs it, in a real subprocess."""
