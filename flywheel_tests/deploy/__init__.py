"""Tests of deployment: the Dagster instance on PostgreSQL and the UI in a real webserver."""
