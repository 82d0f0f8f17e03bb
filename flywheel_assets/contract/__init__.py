"""The landing contract: the streams producers write, how a line is validated, and the landing zone.

Shared by ingestion, the collector and the catalog's raw tables; it imports nothing of the project.
"""

from .landing import FileReadError, LandingFile, LandingZone
from .records import (
    ANNOTATIONS,
    DRIFT_EVENTS,
    FEEDBACK,
    INTERACTIONS,
    MESSAGE,
    STREAMS,
    STREAMS_BY_NAME,
    TIMESTAMP,
    Reason,
    Rejection,
    Stream,
    parse_line,
    validate_record,
)

__all__ = [
    "ANNOTATIONS",
    "DRIFT_EVENTS",
    "FEEDBACK",
    "INTERACTIONS",
    "MESSAGE",
    "STREAMS",
    "STREAMS_BY_NAME",
    "TIMESTAMP",
    "FileReadError",
    "LandingFile",
    "LandingZone",
    "Reason",
    "Rejection",
    "Stream",
    "parse_line",
    "validate_record",
]
