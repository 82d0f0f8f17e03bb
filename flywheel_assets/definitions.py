"""The Flywheel code location: every stage's definitions plus the shared resources."""

import dagster as dg

from .curation import defs as curation
from .ingest import defs as ingest
from .monitoring import defs as monitoring
from .operations import defs as operations
from .privacy import defs as privacy
from .privacy.resources import PrivacyResource
from .resources import LakeResource, LandingResource
from .training import defs as training
from .training.resources import TrainingResource
from .versioning import defs as versioning

defs = dg.Definitions.merge(
    ingest.defs,
    privacy.defs,
    curation.defs,
    monitoring.defs,
    training.defs,
    versioning.defs,
    operations.defs,
    dg.Definitions(
        resources={
            "lake": LakeResource(),
            "landing": LandingResource(),
            "privacy": PrivacyResource(),
            "training": TrainingResource(),
        }
    ),
)
