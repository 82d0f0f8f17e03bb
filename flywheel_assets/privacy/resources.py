"""The privacy stage's resource: keyed hashing of identifiers and the PII detector."""

from __future__ import annotations

import os

import dagster as dg
from pydantic import Field

from ..governance.hashing import KEY_ENV, load_key
from .pii import PATTERNS_ENV, Detector, PatternSpec, load_patterns_file


class PiiPattern(dg.Config):
    """A house-specific kind of personal data to redact, added to the built-in detectors."""

    name: str = Field(description="Kind name, lower_snake_case, e.g. 'employee_id'.")
    regex: str = Field(description="RE2 regular expression; a group (?P<value>...) limits the hit.")
    placeholder: str = Field(description="Replacement text, e.g. '[EMPLOYEE_ID]'.")
    validator: str | None = Field(
        default=None, description="Optional built-in validator name (e.g. 'luhn', 'iban')."
    )


class PrivacyResource(dg.ConfigurableResource):
    """Keyed hashing of identifiers and PII detection, shared by every stage that touches text."""

    hash_key_env: str = Field(
        default=KEY_ENV,
        description="Environment variable holding the HMAC key for user ids. Only its name is "
        "configured: the key never appears in run config, logs or tables.",
    )
    extra_patterns: list[PiiPattern] = Field(
        default_factory=list,
        description="Extra PII patterns, applied before the built-in ones.",
    )
    patterns_file: str | None = Field(
        default=None,
        description="A JSON file with a list of extra patterns ({name, regex, placeholder, "
        "validator}). Empty: $FLYWHEEL_PII_PATTERNS, if set.",
    )

    def key(self) -> bytes:
        return load_key(self.hash_key_env)

    def detector(self) -> Detector:
        specs = [
            PatternSpec(p.name, p.regex, p.placeholder, p.validator) for p in self.extra_patterns
        ]
        path = self.patterns_file or os.environ.get(PATTERNS_ENV)
        return Detector([*specs, *(load_patterns_file(path) if path else [])])
