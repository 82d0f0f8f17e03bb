"""A local Arrow file that collects record batches and then feeds them to one Delta write, kept in
a private folder of the lake's own.

Rows built piece by piece (quarantined lines, tagged partitions) wait on disk instead of in
memory, and are still committed atomically: the write reads them back one batch at a time.
Spilled rows are redacted or raw rows about people, so they never go to the shared temp folder:
they live under `<lake>/_spill/` (0700), each run's folder is removed when the run ends, and a
folder left by a killed run is removed by the next run that spills (or by `remove_stale_spills`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from .permissions import is_local, local_path, make_private

SPILL_FOLDER = "_spill"
# Where spills go for a lake on an object store (default: ~/.cache/flywheel/spill).
SPILL_ENV = "FLYWHEEL_SPILL_DIR"
_LOCK = ".lock"
# A run folder without its lock file is being created; older than this it was left half-made.
_UNLOCKED_GRACE_S = 600


class Spill:
    def __init__(self, path: Path, schema: pa.Schema):
        self.path, self.schema = path, schema
        self.rows = 0
        self._writer = ipc.new_file(str(path), schema)

    def write(self, data: pa.Table | pa.RecordBatch) -> None:
        if data.num_rows:
            if isinstance(data, pa.RecordBatch):
                data = pa.Table.from_batches([data])
            self._writer.write_table(data.select(self.schema.names).cast(self.schema))
            self.rows += data.num_rows

    def reader(self) -> pa.RecordBatchReader:
        """Close the file and read it back batch by batch (not mapped: memory stays flat)."""
        self._writer.close()
        source = ipc.open_file(pa.OSFile(str(self.path)))
        batches = (source.get_batch(i) for i in range(source.num_record_batches))
        return pa.RecordBatchReader.from_batches(self.schema, batches)


def spill_root(lake_root: str) -> Path:
    """The private folder spills of this lake go to: `<lake>/_spill` for a local lake, else
    $FLYWHEEL_SPILL_DIR or ~/.cache/flywheel/spill."""
    if is_local(lake_root):
        return local_path(lake_root) / SPILL_FOLDER
    configured = os.environ.get(SPILL_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "flywheel" / "spill"


@contextmanager
def spill_directory(lake_root: str, prefix: str) -> Iterator[Path]:
    """A fresh 0700 folder for one run's spill files, removed when the block ends.

    The folder holds a lock for as long as this process lives, so a later run can tell a folder
    left by a killed run (lock free) from one in use (lock held) and remove only the former.
    """
    if is_local(lake_root):
        make_private(lake_root)
    base = spill_root(lake_root)
    make_private(base)
    remove_stale_spills(lake_root)
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}-{os.getpid()}-", dir=base))  # 0700
    lock = open(path / _LOCK, "w")  # noqa: SIM115 - held until the block ends
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield path
    finally:
        lock.close()
        shutil.rmtree(path, ignore_errors=True)


def remove_stale_spills(lake_root: str) -> list[str]:
    """Remove the spill folders of runs that no longer exist; returns the folders removed."""
    base = spill_root(lake_root)
    if not base.is_dir():
        return []
    removed = []
    for path in sorted(base.iterdir()):
        if path.is_dir() and _stale(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


def _stale(path: Path) -> bool:
    try:
        lock = open(path / _LOCK)  # noqa: SIM115
    except FileNotFoundError:
        return time.time() - path.stat().st_mtime > _UNLOCKED_GRACE_S
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its run is alive
        return True
