"""Tests of the project's shape: package layout, catalog, code location, docs and benchmark."""
