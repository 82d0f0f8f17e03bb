"""The I/O floor: Arrow parses the landing JSON Lines and writes them once as Parquet.

No pipeline that reads its input and writes its output once can be faster. Arrow's JSON reader
fails a whole file on one malformed line, so the floor reads a copy of the landing zone holding only
the lines the contract accepts (made before the clock starts; about 1% fewer bytes).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from flywheel_assets.contract.records import STREAMS, Rejection, parse_line


def clean_copy(landing: Path, dest: Path) -> int:
    """Copy every landing file keeping only lines the contract accepts; returns bytes written."""
    written = 0
    for stream in STREAMS:
        for path in sorted((landing / stream.name).glob("*.jsonl*")):
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rb") as f:
                lines = [line for line in f if _valid(stream, line)]
            target = dest / stream.name / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if not lines:
                continue
            with opener(target, "wb") as f:
                f.writelines(lines)
            written += sum(len(line) for line in lines)
    return written


def io_floor(clean_landing: Path, out: Path) -> int:
    """Parse every file with Arrow and write it once as Parquet; returns the rows written."""
    rows = 0
    for path in sorted(clean_landing.rglob("*.jsonl*")):
        compression = "gzip" if path.suffix == ".gz" else None
        with pa.input_stream(str(path), compression=compression) as f:
            table = pajson.read_json(
                f, parse_options=pajson.ParseOptions(unexpected_field_behavior="infer")
            )
        target = out / path.parent.name / (path.name.split(".")[0] + ".parquet")
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, target)
        rows += table.num_rows
    return rows


def _valid(stream, line: bytes) -> bool:
    try:
        parse_line(stream, line.rstrip(b"\r\n"))
    except Rejection:
        return False
    return True
