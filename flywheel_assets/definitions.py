"""The Flywheel code location: every stage's definitions plus the shared resources."""

import dagster as dg

from .ingest import defs as ingest
from .operations import defs as operations
from .resources import LakeResource, LandingResource

defs = dg.Definitions.merge(
    ingest.defs,
    operations.defs,
    dg.Definitions(resources={"lake": LakeResource(), "landing": LandingResource()}),
)
