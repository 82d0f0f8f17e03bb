"""Tests of the lake: table versions, restore and vacuum, and the lake on an object store."""
