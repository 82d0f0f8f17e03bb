"""The seeded sample landing zone: `write_sample_landing` writes it and returns its manifest."""

from .records import iban_check_digits, luhn_check_digit
from .vocabulary import FEEDBACK_KINDS, FEEDBACK_REASONS, INTERACTION_REASONS, STREAMS
from .writer import DEFAULT_START, SampleManifest, write_sample_landing

__all__ = [
    "DEFAULT_START",
    "FEEDBACK_KINDS",
    "FEEDBACK_REASONS",
    "INTERACTION_REASONS",
    "STREAMS",
    "SampleManifest",
    "iban_check_digits",
    "luhn_check_digit",
    "write_sample_landing",
]
