"""Reference implementations kept to test faster ones against."""
