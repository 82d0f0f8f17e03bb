"""Idempotency keys: a retried request with the same key is answered again, not stored again.

Keys live for `ttl_seconds` and are appended to a small JSON Lines log so they survive a restart.
Record ids de-duplicate again at ingestion; the key also keeps the response the same.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path


class IdempotencyStore:
    def __init__(self, path: Path | None, ttl_seconds: float = 24 * 3600):
        self.path = path
        self.ttl = ttl_seconds
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, dict]] = {}
        if path is not None and path.exists():
            self._load(path)

    def get(self, scope: str, key: str) -> dict | None:
        with self._lock:
            entry = self._entries.get(f"{scope}\x1f{key}")
        if entry is None or time.time() - entry[0] > self.ttl:
            return None
        return entry[1]

    def put(self, scope: str, key: str, response: dict) -> None:
        now = time.time()
        with self._lock:
            self._entries[f"{scope}\x1f{key}"] = (now, response)
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as f:
                    row = {"scope": scope, "key": key, "at": now, "response": response}
                    f.write(json.dumps(row) + "\n")

    def _load(self, path: Path) -> None:
        now, kept = time.time(), []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line from a crash
            if now - row["at"] <= self.ttl:
                self._entries[f"{row['scope']}\x1f{row['key']}"] = (row["at"], row["response"])
                kept.append(line)
        path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")  # compact
