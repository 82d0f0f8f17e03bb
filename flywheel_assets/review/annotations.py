"""An operator's review becomes an annotation record, stored the way the collector stores one.

The record is checked against the landing contract and appended through the collector's spool
(`LandingWriter`), so ingestion reads it like any other annotation. Each rendered form carries a
nonce: the annotation id and the idempotency key both derive from it, so a double submit stores
one annotation. Reviewed request ids are journaled, so they leave the queue view at once and stay
out of it until a refresh drains them from `review_queue`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..collector.idempotency import IdempotencyStore
from ..collector.writer import LandingWriter
from ..contract.records import ANNOTATIONS, Rejection, validate_record

VERDICTS = ("good", "bad")
MAX_CORRECTION_CHARS = 20_000


class ReviewError(ValueError):
    """A review that cannot be stored; the message says why."""


@dataclass(frozen=True)
class Review:
    request_id: str
    operator: str  # from the session, never from the form
    verdict: str | None
    correction: str | None
    tags: list[str]
    nonce: str


def annotation_record(review: Review, now: datetime | None = None) -> dict:
    """The annotation in the landing contract, validated; ReviewError says what is wrong."""
    if review.verdict is None and not review.correction:
        raise ReviewError("choose accept or reject, or write a correction")
    if review.verdict is not None and review.verdict not in VERDICTS:
        raise ReviewError(f"verdict must be one of {', '.join(VERDICTS)}")
    if review.correction and len(review.correction) > MAX_CORRECTION_CHARS:
        raise ReviewError(f"the correction is over {MAX_CORRECTION_CHARS} characters")
    if not 8 <= len(review.nonce) <= 100:
        raise ReviewError("the form is stale: open the item again")
    record = {
        "annotation_id": "review-" + _digest(review.request_id, review.nonce),
        "request_id": review.request_id,
        "ts": (now or datetime.now(UTC)).isoformat(),
        "operator": review.operator,
        "tags": review.tags,
        "correction": review.correction or None,
        "verdict": review.verdict,
        "source": "review_page",
    }
    try:
        validate_record(ANNOTATIONS, dict(record))
    except Rejection as exc:
        raise ReviewError(exc.detail) from None
    return record


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


class ReviewStore:
    """Stores reviews through the spool and remembers which request ids were reviewed here."""

    def __init__(self, writer: LandingWriter, spool_dir: Path):
        self.writer = writer
        self.keys = IdempotencyStore(spool_dir / "review_idempotency.jsonl")
        self.journal = spool_dir / "reviewed.jsonl"
        self._lock = threading.Lock()
        self._reviewed = self._load()

    def submit(self, review: Review) -> dict:
        """Store the review once; a repeat of the same form returns the first answer."""
        with self._lock:
            scope = f"review:{review.request_id}"  # a nonce counts only for its own item
            seen = self.keys.get(scope, review.nonce)
            if seen is not None:
                return seen
            record = annotation_record(review)
            line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
            self.writer.submit(ANNOTATIONS.name, [line]).result(timeout=30)
            answer = {"annotation_id": record["annotation_id"], "request_id": review.request_id}
            self.keys.put(scope, review.nonce, answer)
            with open(self.journal, "a", encoding="utf-8") as f:
                f.write(json.dumps(answer) + "\n")
            self._reviewed.add(review.request_id)
            return answer

    @property
    def reviewed(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._reviewed)

    def _load(self) -> set[str]:
        if not self.journal.exists():
            return set()
        ids, kept = set(), []
        for line in self.journal.read_text(encoding="utf-8").split("\n"):
            try:
                ids.add(json.loads(line)["request_id"])
            except (json.JSONDecodeError, KeyError):
                continue  # a torn last line from a crash
            kept.append(line)
        # Rewritten without the torn line, so the next entry starts on a line of its own.
        self.journal.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        return ids
