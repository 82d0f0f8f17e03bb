"""Helpers the tests share: record builders, the CLI runner, in-process jobs and real servers."""
