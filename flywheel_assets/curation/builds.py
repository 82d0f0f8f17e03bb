"""What every curated build shares: the versions it read, its fingerprint, its commit metadata.

A build stores a fingerprint of its sources' versions and settings in its commit; the next
build with the same fingerprint commits nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import pyarrow as pa
import pyarrow.compute as pc

from ..lake.tables import Lake, TableSpec

FINGERPRINT_KEY = "flywheel.fingerprint"


def source_versions(lake: Lake, tables: tuple[str, ...]) -> dict[str, int]:
    """The version of each table's latest data commit (maintenance commits do not count)."""
    return {name: lake.data_version(name) for name in tables}


def read_or_empty(
    lake: Lake,
    spec: TableSpec,
    filter: pc.Expression | None = None,
    columns: list[str] | None = None,
) -> pa.Table:
    table = lake.read(spec.name, filter=filter, columns=columns)
    if table is None:
        table = spec.schema.empty_table()
        return table.select(columns) if columns else table
    return table


def build_fingerprint(versions: dict[str, int], *settings) -> str:
    blob = json.dumps(
        [versions, *[asdict(s) for s in settings]], sort_keys=True, default=str
    ).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def commit_meta(fingerprint: str, versions: dict[str, int]) -> dict:
    return {
        "flywheel.operation": "curate",
        FINGERPRINT_KEY: fingerprint,
        "source_versions": versions,
    }
