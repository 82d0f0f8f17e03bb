"""Training snapshots: the exact Delta versions of the curated sets a retrain uses.

Counting what is new reads only the Delta log (row counts of the files in each version), never the
data, so a sensor can ask it every tick at any table size.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from ..catalog.curated import DPO_SET, EVAL_CASES, KTO_SET, SFT_SET
from ..catalog.models import TRAINING_SNAPSHOTS
from ..curation.builds import source_versions
from ..lake.tables import Lake, table_stats

# The tables a model trains on; eval_cases is pinned too, so its evaluation can be repeated.
TRAINING_TABLES = (SFT_SET.name, DPO_SET.name, KTO_SET.name)
PINNED_TABLES = (*TRAINING_TABLES, EVAL_CASES.name)


# The run tag naming the failure cluster a retrain targets (set by failure_cluster_sensor).
FAILURE_CLUSTER_TAG = "flywheel/failure_cluster"


class TooLittleData(Exception):
    """There is not enough new curated data to be worth a retrain."""


@dataclass(frozen=True)
class Snapshot:
    snapshot_id: str
    versions: dict[str, int]
    rows: dict[str, int]
    new_rows: dict[str, int]
    target_cluster: str | None = None  # the failure cluster the run retrains on, if any

    @property
    def new_training_rows(self) -> int:
        return sum(self.new_rows.get(t, 0) for t in TRAINING_TABLES)


def rows_at(lake: Lake, table: str, version: int | None = None) -> int:
    """Rows of a table at a version, summed from the log's per-file counts (no data read)."""
    if version is not None and version < 0:
        return 0
    dt = lake.open(table, version=version)
    return 0 if dt is None else table_stats(dt).rows


def current_versions(lake: Lake) -> dict[str, int]:
    return source_versions(lake, PINNED_TABLES)


def versions_key(versions: dict[str, int]) -> str:
    """A short, stable name for a set of table versions (the sensors' run keys use it)."""
    blob = json.dumps(versions, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def last_snapshot(lake: Lake) -> dict | None:
    table = lake.read(TRAINING_SNAPSHOTS.name)
    if table is None or table.num_rows == 0:
        return None
    rows = table.sort_by([("created_at", "descending")]).slice(0, 1).to_pylist()
    row = rows[0]
    return row | {"versions": json.loads(row["versions"])}


def new_rows_since(lake: Lake, baseline: dict[str, int] | None) -> tuple[dict[str, int], dict]:
    """(current versions, rows added per table since `baseline` versions).

    Curated sets are rebuilt whole, so "added" is the growth in rows between the two versions: a
    rebuild that swaps rows without growing counts nothing, and erasure never counts negative.
    """
    versions = current_versions(lake)
    added = {}
    for table in TRAINING_TABLES:
        now = rows_at(lake, table) if versions[table] >= 0 else 0
        then = rows_at(lake, table, (baseline or {}).get(table, -1))
        added[table] = max(0, now - then)
    return versions, added


def check_new_data(lake: Lake, min_new_rows: int) -> tuple[dict[str, int], dict[str, int]]:
    """(current versions, rows added per training table); TooLittleData when too few."""
    previous = last_snapshot(lake)
    versions, added = new_rows_since(lake, previous["versions"] if previous else None)
    if versions[EVAL_CASES.name] < 0 or all(versions[t] < 0 for t in TRAINING_TABLES):
        raise TooLittleData("no curated tables yet: run the pipeline (flywheel run) first")
    total = sum(added.values())
    if total < min_new_rows:
        since = f"snapshot {previous['snapshot_id']}" if previous else "the start"
        raise TooLittleData(
            f"{total} new curated training rows since {since} ({describe_counts(added)}); at least "
            f"{min_new_rows} needed to retrain"
        )
    return versions, added


def take_snapshot(
    lake: Lake,
    *,
    run_id: str,
    trigger: str,
    run_key: str = "",
    min_new_rows: int = 1,
    now: datetime | None = None,
    target_cluster: str | None = None,
) -> Snapshot:
    """Pin the current versions of the training tables and eval cases, and record them, with the
    failure cluster the run targets (`curation.failures.cluster_rows` names its rows).

    Raises TooLittleData when fewer than `min_new_rows` training rows were added since the last
    snapshot (0 lets a retrain repeat on the same data).
    """
    versions, added = check_new_data(lake, min_new_rows)
    rows = {t: rows_at(lake, t, v) for t, v in versions.items()}
    created = now or datetime.now(UTC)
    snapshot_id = f"snap-{created:%Y%m%d%H%M%S}-{versions_key(versions)}"
    record = {
        "snapshot_id": snapshot_id,
        "run_id": run_id,
        "trigger": trigger,
        "run_key": run_key,
        "versions": json.dumps(versions, sort_keys=True),
        "rows": json.dumps(rows, sort_keys=True),
        "new_rows": json.dumps(added, sort_keys=True),
        "created_at": created,
        "target_cluster": target_cluster or None,
    }
    lake.append(
        TRAINING_SNAPSHOTS,
        pa.Table.from_pylist([record], schema=TRAINING_SNAPSHOTS.schema),
        metadata={"flywheel.operation": "snapshot", "flywheel.run_id": run_id},
    )
    return Snapshot(snapshot_id, versions, rows, added, target_cluster or None)


def snapshot_for_run(lake: Lake, run_id: str) -> Snapshot | None:
    table = lake.read(TRAINING_SNAPSHOTS.name, filter=pc.field("run_id") == run_id)
    if table is None or table.num_rows == 0:
        return None
    row = table.to_pylist()[-1]
    return Snapshot(
        row["snapshot_id"],
        json.loads(row["versions"]),
        json.loads(row["rows"]),
        json.loads(row["new_rows"]),
        row.get("target_cluster"),  # absent from tables written before the column
    )


def describe_counts(added: dict[str, int]) -> str:
    return ", ".join(f"{t} +{n}" for t, n in added.items())
