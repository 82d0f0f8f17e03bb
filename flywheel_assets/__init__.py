"""Flywheel: a Dagster code location that turns an LLM app's production traffic into curated,
versioned training data and retrained models. `definitions.py` assembles it."""
