"""Tests of the seeded sample landing-zone generator."""
