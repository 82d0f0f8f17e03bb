"""Idempotency keys: a retried request with the same key is answered again, not stored again.

A key is bound to what it was first used with: a digest of the bearer token and of the request
body. The same token sending the same bytes gets the first answer again; another body or another
token is refused (`KeyReused`), so a reused key never silently drops new records. Keys live for
`ttl_seconds` and are appended to a small JSON Lines log so they survive a restart. Record ids
de-duplicate again at ingestion: losing a key (a crash before it is logged) stores a retry twice
there, never loses it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fingerprint:
    """What a key was first used with; the token only as a digest, never in the log."""

    token: str
    body: str

    @classmethod
    def of(cls, token: str, body: bytes) -> Fingerprint:
        return cls(
            hashlib.sha256(b"flywheel-token\x00" + token.encode()).hexdigest()[:32],
            hashlib.sha256(body).hexdigest(),
        )


class KeyReused(ValueError):
    """The key was first used by another token or with another body."""


@dataclass(frozen=True)
class Stored:
    response: dict
    status: int | None
    fingerprint: Fingerprint | None


def check(key: str, first: Fingerprint | None, now: Fingerprint | None) -> None:
    """Raise KeyReused unless `now` is what the key was first used with."""
    if first is None or now is None:
        return  # a key logged before keys were bound, or a caller that binds nothing
    if first.token != now.token:
        raise KeyReused(
            f"Idempotency-Key {key!r} was first used by another token; use a key of your own"
        )
    if first.body != now.body:
        raise KeyReused(
            f"Idempotency-Key {key!r} was first used with a different body; a retry must send "
            "the same bytes again, and a new batch needs a new key"
        )


class IdempotencyStore:
    def __init__(self, path: Path | None, ttl_seconds: float = 24 * 3600):
        self.path = path
        self.ttl = ttl_seconds
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Stored]] = {}
        if path is not None and path.exists():
            self._load(path)

    def get(self, scope: str, key: str) -> dict | None:
        """The response first stored under the key, whatever it was bound to."""
        stored = self.lookup(scope, key)
        return None if stored is None else stored.response

    def lookup(self, scope: str, key: str, fingerprint: Fingerprint | None = None) -> Stored | None:
        """What was stored under the key, or None; KeyReused when `fingerprint` differs."""
        with self._lock:
            entry = self._entries.get(f"{scope}\x1f{key}")
        if entry is None or time.time() - entry[0] > self.ttl:
            return None
        check(key, entry[1].fingerprint, fingerprint)
        return entry[1]

    def put(
        self,
        scope: str,
        key: str,
        response: dict,
        *,
        status: int | None = None,
        fingerprint: Fingerprint | None = None,
    ) -> None:
        """Remember the answer. The log is best effort: when it cannot be written (a full disk)
        the key holds until the process stops, and ingestion de-duplicates after that."""
        now = time.time()
        with self._lock:
            self._entries[f"{scope}\x1f{key}"] = (now, Stored(response, status, fingerprint))
            if self.path is None:
                return
            row = {"scope": scope, "key": key, "at": now, "response": response}
            if status is not None:
                row["status"] = status
            if fingerprint is not None:
                row["token"], row["body"] = fingerprint.token, fingerprint.body
            try:
                self._append((json.dumps(row, ensure_ascii=False) + "\n").encode())
            except OSError as exc:
                log.warning("cannot log idempotency key %r: %s", key, exc)

    def _append(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as f:
            size = f.tell()
            try:
                f.write(data)
                f.flush()
            except OSError:
                f.truncate(size)  # no torn row for the next one to be glued onto
                raise

    def _load(self, path: Path) -> None:
        now, kept = time.time(), []
        # Split on b"\n" only: rows hold text with U+2028 and other characters str.splitlines
        # breaks on.
        for line in path.read_bytes().split(b"\n"):
            try:
                row = json.loads(line)
                at = float(row["at"])
                fingerprint = None
                if "token" in row:
                    fingerprint = Fingerprint(row["token"], row["body"])
                stored = Stored(row["response"], row.get("status"), fingerprint)
                scope, key = row["scope"], row["key"]
            except (ValueError, KeyError, TypeError):
                continue  # a torn row from a crash, or the empty piece after the last newline
            if now - at <= self.ttl:
                self._entries[f"{scope}\x1f{key}"] = (at, stored)
                kept.append(line + b"\n")
        # Compacted through a new file, so a crash here leaves the old log or the new one whole.
        fresh = path.with_name(path.name + ".tmp")
        try:
            fresh.write_bytes(b"".join(kept))
            os.replace(fresh, path)
        except OSError as exc:
            log.warning("cannot compact %s: %s", path.name, exc)
            fresh.unlink(missing_ok=True)
