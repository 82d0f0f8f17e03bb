"""Append accepted records to the landing zone in rotated files, off the request path.

Requests hand their lines to one writer thread and wait on a future. The thread appends each group
of lines to a local spool file per stream and flushes it before resolving the futures (a group
commit), so an acknowledged record is on disk. A spool file is published to the landing zone as one
complete landing file (hidden name, then renamed; a whole object on an object store) once it
reaches `max_file_bytes` or `max_file_seconds`, and on shutdown. Spool files left by a crash are
published at the next start. Ingestion reads each published file exactly once.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..contract.landing import LandingZone

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriterSettings:
    max_file_bytes: int = 16 << 20
    max_file_seconds: float = 60.0


@dataclass
class _Spool:
    path: Path
    opened: float
    size: int = 0
    lines: int = 0


class LandingWriter:
    def __init__(
        self,
        landing: LandingZone,
        spool_dir: Path,
        settings: WriterSettings,
        *,
        prefix: str = "collector",
    ):
        self.landing = landing
        self.spool_dir = spool_dir
        self.settings = settings
        self.published: list[str] = []  # landing paths, for logs and tests
        self._queue: queue.Queue = queue.Queue()
        self._spools: dict[str, _Spool] = {}
        self._unpublished: list[tuple[str, Path]] = []  # retried every tick, and at the next start
        self._prefix = f"{prefix}-{socket.gethostname()}-{os.getpid()}"
        self._seq = 0
        spool_dir.mkdir(parents=True, exist_ok=True)
        self._recover()
        self._thread = threading.Thread(target=self._run, name="landing-writer", daemon=True)
        self._thread.start()

    def submit(self, stream: str, lines: list[str]) -> Future:
        """Queue lines (no newlines) for `stream`; the future resolves once they are on disk."""
        done: Future = Future()
        self._queue.put((stream, lines, done))
        return done

    def close(self) -> None:
        """Write what is queued, publish every spool file, and stop."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=min(1.0, self.settings.max_file_seconds))
            except queue.Empty:
                self._rotate_old()
                continue
            if item is None:
                self._drain_and_publish()
                return
            group = [item]
            while True:  # group commit: everything queued so far shares one flush
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                group.append(nxt)
            self._write(group)
            self._rotate_old()

    def _write(self, group: list) -> None:
        by_stream: dict[str, list] = {}
        for stream, lines, done in group:
            by_stream.setdefault(stream, []).append((lines, done))
        for stream, items in by_stream.items():
            try:
                spool = self._spool(stream)
                data = "".join(line + "\n" for lines, _ in items for line in lines).encode()
                with open(spool.path, "ab") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                spool.size += len(data)
                spool.lines += sum(len(lines) for lines, _ in items)
            except Exception as exc:  # the requests fail (5xx); the client retries
                for _, done in items:
                    done.set_exception(exc)
                continue
            for _, done in items:
                done.set_result(None)
            if spool.size >= self.settings.max_file_bytes:
                self._publish(stream)

    def _spool(self, stream: str) -> _Spool:
        spool = self._spools.get(stream)
        if spool is None:
            self._seq += 1
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            path = self.spool_dir / stream / f"{self._prefix}-{stamp}-{self._seq:06d}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            spool = self._spools[stream] = _Spool(path, time.monotonic())
        return spool

    def _rotate_old(self) -> None:
        now = time.monotonic()
        for stream, spool in list(self._spools.items()):
            if now - spool.opened >= self.settings.max_file_seconds:
                self._publish(stream)
        if self._unpublished:
            self._retry_unpublished()

    def _drain_and_publish(self) -> None:
        pending = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                pending.append(item)
        if pending:
            self._write(pending)
        for stream in list(self._spools):
            self._publish(stream)

    def _publish(self, stream: str) -> None:
        spool = self._spools.pop(stream)
        self._unpublished.append((stream, spool.path))
        self._retry_unpublished()

    def _retry_unpublished(self) -> None:
        # A landing zone that cannot be written (an object store down) must not stop the writer:
        # the records are safe in the spool file, which is published once the zone is back.
        waiting = []
        for stream, path in self._unpublished:
            try:
                self._publish_file(stream, path)
            except Exception as exc:
                log.warning("cannot publish %s to the landing zone yet: %s", path.name, exc)
                waiting.append((stream, path))
        self._unpublished = waiting

    def _publish_file(self, stream: str, path: Path) -> None:
        text = path.read_text(encoding="utf-8")
        if text:
            lines = text.splitlines()
            self.published.append(self.landing.write_lines(stream, path.name, lines))
        path.unlink()

    def _recover(self) -> None:
        """Publish spool files a previous process left behind (it stopped before rotating)."""
        for path in sorted(self.spool_dir.glob("*/*.jsonl")):
            self._publish_file(path.parent.name, path)
