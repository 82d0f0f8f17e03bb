"""The landing zone: list producers' JSON Lines files and stream their lines in bounded chunks.

Works on any filesystem pyarrow can open (a local folder or an object-store URI).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pyarrow.fs as pafs

SUFFIXES = (".jsonl", ".jsonl.gz")
READ_BLOCK_BYTES = 4 << 20


@dataclass(frozen=True)
class LandingFile:
    stream: str
    path: str  # relative to the landing root, with forward slashes
    size: int
    mtime: datetime | None


@dataclass(frozen=True)
class LineChunk:
    first_line: int  # 1-based number of the first line in `lines`
    lines: list[bytes]


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

    def list_files(self, stream: str) -> list[LandingFile]:
        """Every complete landing file of a stream, sorted by path.

        Names starting with '.' or '_' are skipped anywhere in the path: producers write under such
        a name and rename when the file is complete, so a half-written file is never read.
        """
        folder = f"{self.base.rstrip('/')}/{stream}"
        info = self.fs.get_file_info(folder)
        if info.type == pafs.FileType.NotFound:
            return []
        selector = pafs.FileSelector(folder, recursive=True)
        files = []
        for entry in self.fs.get_file_info(selector):
            if entry.type != pafs.FileType.File or not entry.path.endswith(SUFFIXES):
                continue
            rel = entry.path[len(self.base.rstrip("/")) + 1 :]
            if any(part.startswith((".", "_")) for part in rel.split("/")):
                continue
            files.append(LandingFile(stream, rel, entry.size, entry.mtime))
        return sorted(files, key=lambda f: f.path)

    def exists(self, path: str) -> bool:
        return self.fs.get_file_info(self._full(path)).type == pafs.FileType.File

    def read_lines(self, path: str, chunk_lines: int, digest: hashlib._Hash) -> Iterator[LineChunk]:
        """Yield the file's lines in chunks of at most `chunk_lines`, feeding `digest` as it reads.

        A final line without a newline still counts as a line. Raises FileReadError after the last
        good chunk when the file cannot be read to its end.
        """
        line_no = 1
        pending: list[bytes] = []
        tail = b""
        try:
            for block in self._blocks(path):
                digest.update(block)
                parts = (tail + block).split(b"\n")
                tail = parts.pop()
                pending.extend(parts)
                while len(pending) >= chunk_lines:
                    chunk, pending = pending[:chunk_lines], pending[chunk_lines:]
                    yield LineChunk(line_no, [_strip_cr(x) for x in chunk])
                    line_no += len(chunk)
        except (OSError, EOFError, zlib.error) as exc:
            if pending or tail:
                rest = pending + ([tail] if tail else [])
                yield LineChunk(line_no, [_strip_cr(x) for x in rest])
                line_no += len(rest)
            raise FileReadError(line_no, f"{type(exc).__name__}: {exc}") from None
        if tail:
            pending.append(tail)
        if pending:
            yield LineChunk(line_no, [_strip_cr(x) for x in pending])

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
        except (OSError, EOFError, zlib.error):
            pass  # a corrupt file hashes to what could be read, as it did at ingestion
        return digest.hexdigest()

    def _blocks(self, path: str) -> Iterator[bytes]:
        """The file's decompressed bytes in blocks.

        gzip goes through Python's reader with read1, which hands over every block it could inflate
        before a truncated or corrupt stream raises, so the good lines before the damage are kept.
        """
        with self.fs.open_input_stream(self._full(path), compression=None) as raw:
            if path.endswith(".gz"):
                with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                    while block := f.read1(READ_BLOCK_BYTES):
                        yield block
            else:
                while block := raw.read(READ_BLOCK_BYTES):
                    yield block

    def _full(self, path: str) -> str:
        return f"{self.base.rstrip('/')}/{path}"


def _strip_cr(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\r") else line


def _abspath(path: str) -> str:
    return os.path.abspath(path).replace(os.sep, "/")
