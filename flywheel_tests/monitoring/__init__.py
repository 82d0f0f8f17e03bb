"""Tests of the monitoring stage: the drift monitor and the events it stores."""
