"""A local Arrow file that collects record batches and then feeds them to one Delta write.

Rows built piece by piece (quarantined lines, tagged partitions) wait on disk instead of in
memory, and are still committed atomically: the write reads them back one batch at a time.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc


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
