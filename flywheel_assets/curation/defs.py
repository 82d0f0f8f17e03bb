"""The curation stage's Dagster definitions."""

import dagster as dg

from .assets import ASSETS
from .checks import CHECKS

defs = dg.Definitions(assets=ASSETS, asset_checks=CHECKS)
