"""Tests of the HTTP collector and the client distribution apps embed."""
