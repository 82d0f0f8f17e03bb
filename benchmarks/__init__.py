"""Benchmarks and load tests for Flywheel, run from the repository root with ``python -m``.

``benchmarks.pipeline`` (the whole pipeline against the I/O floor and a textbook implementation),
``benchmarks.redaction`` (the PII detector alone) and ``benchmarks.collector_load`` (the collector).
"""
