"""Ingestion: landing files into the raw Delta tables exactly once, bad lines quarantined."""
