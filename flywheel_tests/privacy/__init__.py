"""Tests of the privacy stage: PII detection, redaction, keyed hashing, erasure and retention."""
