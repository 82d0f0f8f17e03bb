"""The landing zone: list producers' JSON Lines files and stream their lines in bounded chunks.

Works on any filesystem pyarrow can open (a local folder or an object-store URI). In a local
folder only regular files inside it are read: symbolic links and special files are refused.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow.fs as pafs

from ..lake.permissions import make_private

SUFFIXES = (".jsonl", ".jsonl.gz")
READ_BLOCK_BYTES = 4 << 20
# A line longer than this (bytes before its line end) is not held whole: only its first
# QUARANTINE_PREFIX_BYTES are kept, to be quarantined.
DEFAULT_MAX_LINE_BYTES = 1 << 20
QUARANTINE_PREFIX_BYTES = 4096
# A chunk also ends once its lines hold this many bytes, so many long lines stay bounded too.
CHUNK_BYTES = 64 << 20
_BOM = b"\xef\xbb\xbf"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LandingFile:
    stream: str
    path: str  # relative to the landing root, with forward slashes
    size: int
    mtime: datetime | None


@dataclass(frozen=True)
class RefusedFile:
    """A landing entry that is never read, and why."""

    stream: str
    path: str
    reason: str


@dataclass(frozen=True)
class LineChunk:
    first_line: int  # 1-based number of the first line in `lines`
    lines: list[bytes]
    # Lines longer than the limit, by index in `lines`: their full length (`lines` holds a prefix).
    overlong: dict[int, int] = field(default_factory=dict)


class FileReadError(Exception):
    """The file could not be read to its end (for example a truncated gzip stream)."""

    def __init__(self, line_number: int, detail: str):
        super().__init__(detail)
        self.line_number = line_number
        self.detail = detail


class LandingZone:
    def __init__(self, root: str):
        self.root = root
        if "://" in root:
            self.fs, self.base = pafs.FileSystem.from_uri(root)
        else:
            self.fs, self.base = pafs.LocalFileSystem(), _abspath(root)
            # Landing files hold raw PII: no other local user may read them.
            make_private(self.base, create=False)

    @property
    def local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def list_files(self, stream: str) -> list[LandingFile]:
        """Every complete landing file of a stream, sorted by path (refused entries logged)."""
        return self.scan(stream)[0]

    def scan(self, stream: str) -> tuple[list[LandingFile], list[RefusedFile]]:
        """Every complete landing file of a stream, sorted by path, and the entries refused.

        Names starting with '.' or '_' are skipped anywhere in the path: producers write under such
        a name and rename when the file is complete, so a half-written file is never read. A
        symbolic link (to a file or a folder) or a special file (a pipe, a socket, a device) is
        refused and logged, never followed or read: it could point outside the landing zone.
        """
        folder = f"{self.base.rstrip('/')}/{stream}"
        info = self.fs.get_file_info(folder)
        if info.type == pafs.FileType.NotFound:
            return [], []
        if self.local:
            paths, refused = self._walk_local(stream, folder)
            entries = self.fs.get_file_info(paths) if paths else []
        else:
            entries = self.fs.get_file_info(pafs.FileSelector(folder, recursive=True))
            refused = []
        files = []
        for entry in entries:
            rel = entry.path[len(self.base.rstrip("/")) + 1 :]
            if not entry.path.endswith(SUFFIXES) or _hidden(rel):
                continue
            if entry.type == pafs.FileType.File:
                files.append(LandingFile(stream, rel, entry.size, entry.mtime))
            elif entry.type != pafs.FileType.Directory:
                refused.append(RefusedFile(stream, rel, "not a regular file"))
        for r in refused:
            log.warning("landing entry %s refused, never read: %s", r.path, r.reason)
        return sorted(files, key=lambda f: f.path), sorted(refused, key=lambda r: r.path)

    def _walk_local(self, stream: str, folder: str) -> tuple[list[str], list[RefusedFile]]:
        """Regular files under `folder` without following links, and the entries refused."""
        paths: list[str] = []
        refused: list[RefusedFile] = []
        prefix = len(self.base.rstrip("/")) + 1
        stack = [folder]
        while stack:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    path = entry.path.replace(os.sep, "/")
                    rel = path[prefix:]
                    if _hidden(rel):
                        continue
                    if not _utf8(rel):
                        shown = rel.encode("utf-8", "backslashreplace").decode("utf-8")
                        refused.append(RefusedFile(stream, shown, "name is not valid UTF-8"))
                    elif entry.is_symlink():
                        refused.append(RefusedFile(stream, rel, _SYMLINK))
                    elif entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif not entry.name.endswith(SUFFIXES):
                        continue
                    elif entry.is_file(follow_symlinks=False):
                        paths.append(path)
                    else:
                        refused.append(RefusedFile(stream, rel, "not a regular file"))
        return paths, refused

    def exists(self, path: str) -> bool:
        return self.fs.get_file_info(self._full(path)).type == pafs.FileType.File

    def read_lines(
        self,
        path: str,
        chunk_lines: int,
        digest: hashlib._Hash,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> Iterator[LineChunk]:
        """Yield the file's lines in chunks of at most `chunk_lines`, feeding `digest` as it reads.

        A final line without a newline still counts as a line; a UTF-8 byte order mark at the
        start of the file is dropped. A line longer than `max_line_bytes` is never held whole:
        the chunk carries its prefix and its length in `overlong`. Raises FileReadError after the
        last good chunk when the file cannot be read to its end.
        """
        lines = _LineSplitter(max_line_bytes)
        line_no = 1
        try:
            for block in self._blocks(path):
                digest.update(block)
                lines.feed(block)
                while lines.ready(chunk_lines):
                    chunk = lines.take(line_no, chunk_lines)
                    yield chunk
                    line_no += len(chunk.lines)
        except Exception as exc:  # noqa: BLE001 - any failure to read on ends the file here
            lines.close()
            while lines.pending:
                chunk = lines.take(line_no, chunk_lines)
                yield chunk
                line_no += len(chunk.lines)
            raise FileReadError(line_no, f"{type(exc).__name__}: {exc}") from None
        lines.close()
        while lines.pending:
            chunk = lines.take(line_no, chunk_lines)
            yield chunk
            line_no += len(chunk.lines)

    def write_lines(self, stream: str, name: str, lines: list[str]) -> str:
        """Write a complete landing file the way producers must: under a hidden name, then
        renamed, so ingestion never reads it half-written. Returns its path in the zone."""
        rel = f"{stream}/{name}"
        hidden = f"{stream}/.{name}.tmp"
        self.fs.create_dir(self._full(stream), recursive=True)
        with self.fs.open_output_stream(self._full(hidden)) as out:
            out.write("".join(line + "\n" for line in lines).encode())
        self.fs.move(self._full(hidden), self._full(rel))
        return rel

    def delete(self, path: str) -> None:
        self.fs.delete_file(self._full(path))

    def move(self, path: str, dest: str) -> None:
        target = self._full(dest)
        self.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        self.fs.move(self._full(path), target)

    def fingerprint(self, path: str) -> str:
        """SHA-256 of the file's (decompressed) content, the same digest `read_lines` computes."""
        digest = hashlib.sha256()
        try:
            for block in self._blocks(path):
                digest.update(block)
        except Exception:  # noqa: BLE001 - as `read_lines`: what could be read, as at ingestion
            pass
        return digest.hexdigest()

    def _blocks(self, path: str) -> Iterator[bytes]:
        """The file's decompressed bytes in blocks.

        gzip goes through Python's reader with read1, which hands over every block it could inflate
        before a truncated or corrupt stream raises, so the good lines before the damage are kept.
        """
        with self._open(path) as raw:
            if path.endswith(".gz"):
                with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                    while block := f.read1(READ_BLOCK_BYTES):
                        yield block
            else:
                while block := raw.read(READ_BLOCK_BYTES):
                    yield block

    def _open(self, path: str):
        """The file opened for reading; locally only a regular file reached through no link."""
        full = self._full(path)
        if not self.local:
            return self.fs.open_input_stream(full, compression=None)
        # The root itself may sit behind a link (a mounted data folder); nothing below it may.
        inside = os.path.join(os.path.realpath(self.base), *path.split("/"))
        if os.path.realpath(full) != inside:
            raise OSError(f"{path} is reached through a symbolic link; refused")
        # O_NOFOLLOW: a link swapped in since listing fails here; O_NONBLOCK: a pipe never blocks.
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(f"{path} is not a regular file; refused")
        return os.fdopen(fd, "rb", buffering=0)

    def _full(self, path: str) -> str:
        return f"{self.base.rstrip('/')}/{path}"


_SYMLINK = "a symbolic link (it could point outside the landing zone)"


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes, as os.scandir passes them through
        return False
    return True


def _hidden(rel: str) -> bool:
    return any(part.startswith((".", "_")) for part in rel.split("/"))


class _LineSplitter:
    """Blocks of bytes in, complete lines out, holding at most `limit + 1` bytes of a line that
    is still open, so a line of any length costs bounded memory."""

    def __init__(self, limit: int):
        self.limit = limit
        self.pending: list[bytes] = []
        self.overlong: dict[int, int] = {}  # index in `pending` -> the line's full length
        self.pending_bytes = 0
        self.tail = bytearray()  # the open line's first bytes
        self.tail_len = 0  # the open line's length so far
        self.lines = 0  # lines completed so far in the file

    def feed(self, block: bytes) -> None:
        parts = block.split(b"\n")
        last = parts.pop()
        if parts:
            self._grow(parts[0])
            self._end_tail()
            rest = parts[1:]
            if rest and max(map(len, rest)) <= self.limit:
                # The common case, in C: complete lines of bounded length.
                stripped = [_strip_cr(x) for x in rest]
                self.pending.extend(stripped)
                self.pending_bytes += sum(map(len, stripped))
                self.lines += len(rest)
            else:
                for line in rest:
                    self._add(line, len(line))
        self._grow(last)

    def close(self) -> None:
        if self.tail_len:
            self._end_tail()

    def ready(self, chunk_lines: int) -> bool:
        return len(self.pending) >= chunk_lines or self.pending_bytes >= CHUNK_BYTES

    def take(self, first_line: int, chunk_lines: int) -> LineChunk:
        n, size = 0, 0
        while n < len(self.pending) and n < chunk_lines and size < CHUNK_BYTES:
            size += len(self.pending[n])
            n += 1
        lines, self.pending = self.pending[:n], self.pending[n:]
        overlong = {i: k for i, k in self.overlong.items() if i < n}
        self.overlong = {i - n: k for i, k in self.overlong.items() if i >= n}
        self.pending_bytes -= size
        return LineChunk(first_line, lines, overlong)

    def _grow(self, piece: bytes) -> None:
        room = self.limit + 1 - len(self.tail)
        if room > 0:
            self.tail += piece[:room]
        self.tail_len += len(piece)

    def _end_tail(self) -> None:
        held = bytes(self.tail)
        self._add(held, self.tail_len)
        self.tail.clear()
        self.tail_len = 0

    def _add(self, line: bytes, length: int) -> None:
        """Add a complete line: `line` holds its first bytes, `length` is its full length."""
        if length == len(line):
            line = _strip_cr(line)
            length = len(line)
        if self.lines == 0 and line.startswith(_BOM):
            line, length = line[len(_BOM) :], length - len(_BOM)
        if length > self.limit:
            self.overlong[len(self.pending)] = length
            line = line[:QUARANTINE_PREFIX_BYTES]
        self.pending.append(line)
        self.pending_bytes += len(line)
        self.lines += 1


def _strip_cr(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\r") else line


def _abspath(path: str) -> str:
    return os.path.abspath(path).replace(os.sep, "/")
