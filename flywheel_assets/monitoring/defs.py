"""The monitoring stage's Dagster definitions."""

import dagster as dg

from .assets import ASSETS

defs = dg.Definitions(assets=ASSETS)
