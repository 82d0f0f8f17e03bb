"""Monitoring: the drift monitor over the feedback metrics."""
