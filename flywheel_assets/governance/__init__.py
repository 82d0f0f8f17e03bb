"""What every stage honours, below the stages: keyed hashing of identifiers, erasure tombstones
and rollback exclusions. It imports the lake and the catalog, never a stage."""
