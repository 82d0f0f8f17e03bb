"""The lake: Delta table operations (create, idempotent append, scan, versions, maintenance)."""
