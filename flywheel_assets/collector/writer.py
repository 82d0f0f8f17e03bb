"""Append accepted records to the landing zone in rotated files, off the request path.

Requests hand their encoded lines to one writer thread and wait on a future. The thread appends
each group of lines to a local spool file per stream as one frame (length, CRC-32, the lines) and
fsyncs it before resolving the futures (a group commit), so an acknowledged record is on disk.
A write that fails (a full disk) fails that group's futures, cuts the file back to its last
complete frame and moves on to a new file; a frame torn by a crash or power loss fails its
checksum and is dropped when the file is read back, and it was never acknowledged. A spool file
is published to the landing zone as one complete JSON Lines file (hidden name, fsync, rename; a
whole object on an object store) once it reaches `max_file_bytes` or `max_file_seconds`, and on
shutdown. Spool files left by a crash are published at the next start.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.fs as pafs

from ..contract.landing import LandingZone
from ..lake.permissions import make_private

log = logging.getLogger(__name__)

MAGIC = b"FLYWHEEL-SPOOL-1\n"
SPOOL_SUFFIX = ".spool"
LEGACY_SUFFIX = ".jsonl"  # unframed spool files of earlier versions, published as they are
_FRAME = struct.Struct(">II")  # payload length, CRC-32 of the payload


class SpoolWriteError(Exception):
    """A group could not be made durable (disk full, I/O error); none of its lines is stored."""


@dataclass(frozen=True)
class WriterSettings:
    max_file_bytes: int = 16 << 20
    max_file_seconds: float = 60.0


@dataclass
class _Spool:
    path: Path
    fd: int
    opened: float
    size: int  # bytes up to the end of the last complete, fsynced frame


def encode_lines(lines: Iterable[str | bytes]) -> bytes:
    """The lines as one newline-terminated UTF-8 block; ValueError names the first line that is
    not a single line of valid UTF-8, so nothing malformed ever joins a group."""
    out = []
    for index, line in enumerate(lines):
        try:
            data = line.encode("utf-8") if isinstance(line, str) else bytes(line)
            data.decode("utf-8")
        except UnicodeError as exc:
            raise ValueError(f"line {index} is not valid UTF-8: {exc}") from None
        if not data or b"\n" in data or b"\r" in data:
            raise ValueError(f"line {index} is empty or holds a line break")
        out.append(data)
    return b"".join(line + b"\n" for line in out)


def frame(payload: bytes) -> bytes:
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def read_spool(data: bytes) -> tuple[bytes, int]:
    """The lines of every complete frame of a spool file, and how many bytes after them were
    dropped (a torn last write). ValueError when the file is not a spool file at all."""
    if not data.startswith(MAGIC):
        if MAGIC.startswith(data):
            return b"", len(data)  # torn while its header was written: nothing was stored
        raise ValueError("not a Flywheel spool file (bad header)")
    at, parts = len(MAGIC), []
    while at + _FRAME.size <= len(data):
        size, crc = _FRAME.unpack_from(data, at)
        payload = data[at + _FRAME.size : at + _FRAME.size + size]
        if len(payload) < size or zlib.crc32(payload) != crc:
            break
        parts.append(payload)
        at += _FRAME.size + size
    return b"".join(parts), len(data) - at


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
        # Acknowledged records hold raw PII until they are ingested: no other local user reads them.
        make_private(spool_dir)
        if landing.local:
            make_private(landing.base)
        self._recover()
        self._thread = threading.Thread(target=self._run, name="landing-writer", daemon=True)
        self._thread.start()

    def submit(self, stream: str, lines: Iterable[str | bytes]) -> Future:
        """Queue lines (no line breaks) for `stream`; the future resolves once they are on disk,
        or fails with SpoolWriteError. Raises ValueError at once for a malformed line."""
        data = encode_lines(lines)
        done: Future = Future()
        if not data:
            done.set_result(None)
            return done
        self._queue.put((stream, data, done))
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
            while True:  # group commit: everything queued so far shares one fsync
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
        for stream, data, done in group:
            by_stream.setdefault(stream, []).append((data, done))
        for stream, items in by_stream.items():
            block = frame(b"".join(data for data, _ in items))
            try:
                spool = self._spool(stream)
            except OSError as exc:
                _fail(items, exc)
                continue
            try:
                _write_all(spool.fd, block)
                os.fsync(spool.fd)
            except OSError as exc:
                self._abandon(stream)
                _fail(items, exc)
                continue
            spool.size += len(block)
            for _, done in items:
                done.set_result(None)
            if spool.size >= self.settings.max_file_bytes:
                self._publish(stream)

    def _spool(self, stream: str) -> _Spool:
        spool = self._spools.get(stream)
        if spool is not None:
            return spool
        self._seq += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        folder = self.spool_dir / stream
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            _fsync_dir(self.spool_dir)
        path = folder / f"{self._prefix}-{stamp}-{self._seq:06d}{SPOOL_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            _write_all(fd, MAGIC)
            os.fsync(fd)
            _fsync_dir(folder)  # the file's name survives a power loss too
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        spool = self._spools[stream] = _Spool(path, fd, time.monotonic(), len(MAGIC))
        return spool

    def _abandon(self, stream: str) -> None:
        """After a failed write: cut the file back to its last complete frame and stop writing
        to it (after a failed fsync its pages cannot be trusted); its frames are published."""
        spool = self._spools.pop(stream)
        try:
            os.ftruncate(spool.fd, spool.size)
            os.fsync(spool.fd)
        except OSError as exc:  # the torn frame fails its checksum when the file is read back
            log.warning("cannot cut %s back after a failed write: %s", spool.path.name, exc)
        os.close(spool.fd)
        self._unpublished.append((stream, spool.path))
        self._retry_unpublished()

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
        os.close(spool.fd)
        self._unpublished.append((stream, spool.path))
        self._retry_unpublished()

    def _retry_unpublished(self) -> None:
        # A landing zone that cannot be written (an object store down, a full disk) must not stop
        # the writer: the records are safe in the spool file, published once the zone is back.
        waiting = []
        for stream, path in self._unpublished:
            try:
                self._publish_file(stream, path)
            except Exception as exc:
                log.warning("cannot publish %s to the landing zone yet: %s", path.name, exc)
                waiting.append((stream, path))
        self._unpublished = waiting

    def _publish_file(self, stream: str, path: Path) -> None:
        data = path.read_bytes()
        if path.suffix == SPOOL_SUFFIX:
            data, dropped = read_spool(data)
            if dropped:
                log.warning("%s: dropped a torn last write of %d bytes", path.name, dropped)
        if data:
            name = path.stem + ".jsonl"
            self.published.append(self._write_landing(stream, name, data))
        path.unlink()
        _fsync_dir(path.parent)

    def _write_landing(self, stream: str, name: str, data: bytes) -> str:
        """Publish one complete file; on a local zone it is fsynced before it gets its visible
        name, so the spool file is deleted only once the landing file survives a power loss."""
        if not isinstance(self.landing.fs, pafs.LocalFileSystem):
            lines = data.decode("utf-8", errors="replace").split("\n")
            return self.landing.write_lines(
                stream, name, lines[:-1] if data.endswith(b"\n") else lines
            )
        folder = Path(self.landing.base) / stream
        folder.mkdir(parents=True, exist_ok=True)
        hidden, final = folder / f".{name}.tmp", folder / name
        try:
            with open(hidden, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(hidden, final)
        except BaseException:
            hidden.unlink(missing_ok=True)  # never leave a partial file taking the space
            raise
        _fsync_dir(folder)
        return f"{stream}/{name}"

    def _recover(self) -> None:
        """Queue the spool files a previous process left behind (it stopped before rotating);
        they are published now and retried every tick, so a bad one never stops the start."""
        for path in sorted(self.spool_dir.glob("*/*")):
            if path.is_file() and path.suffix in (SPOOL_SUFFIX, LEGACY_SUFFIX):
                self._unpublished.append((path.parent.name, path))
        self._retry_unpublished()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fail(items: list, exc: OSError) -> None:
    # The requests answer 503; the client retries them.
    error = SpoolWriteError(f"the records could not be written to the spool: {exc}")
    for _, done in items:
        done.set_exception(error)
