"""Tests of the ingest stage: the landing contract, ingestion, its assets, sensor and crashes."""
