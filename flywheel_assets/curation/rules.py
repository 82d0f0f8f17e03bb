"""What every curated-set rule shares: the policy, which answers win, and content ids."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .safety import SafetyPolicy

# Which corrected answer wins when one prompt has several.
TARGET_PRIORITY = {"operator_correction": 4, "user_correction": 3, "edit": 2, "response": 1}
PAIR_PRIORITY = {"correction": 3, "edit": 2, "comparison": 1}
# Columns of tagged_rows that can become a training target.
TARGET_COLUMNS = ("response", "correction", "edited_response")


@dataclass(frozen=True)
class CurationPolicy:
    holdout_share: float = 0.2
    similarity_min: float = 0.10  # below: a rewrite, the prompt was the problem
    similarity_max: float = 0.95  # above: a typo fix teaches nothing
    near_duplicate_threshold: float = 0.9
    max_user_share: float = 0.1
    min_rows_per_user: int = 5
    safety: SafetyPolicy = SafetyPolicy()

    def __post_init__(self):
        if not 0.0 <= self.holdout_share <= 1.0:
            raise ValueError(f"holdout_share must be within [0, 1], got {self.holdout_share}")
        if not 0.0 <= self.similarity_min < self.similarity_max <= 1.0:
            raise ValueError(
                "the similarity band needs 0 <= similarity_min < similarity_max <= 1, got "
                f"{self.similarity_min}..{self.similarity_max}"
            )


ROW_COLUMNS = (
    "request_id",
    "ts",
    "prompt",
    "messages",
    "response",
    "normalized_prompt",
    "user_hash",
    "tags",
    "label",
    "confidence",
    "correction",
    "correction_source",
    "edited_response",
    "preferred_over",
    "verdict",
    "over_cap",
    "model_version",
    "feedback_kinds",
)


def content_id(*parts: str) -> str:
    """A row's id: the same content always gets the same id, in every build."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:20]
