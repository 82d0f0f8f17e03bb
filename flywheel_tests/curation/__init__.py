"""Tests of the curation stage: tagging, the curated sets, their checks, caps and exports."""
