"""Privacy: PII redaction, sampling, retention and erasure."""
