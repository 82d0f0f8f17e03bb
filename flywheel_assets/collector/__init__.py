"""The HTTP collector (optional extra `collector`): apps send records; they land as JSON Lines."""
