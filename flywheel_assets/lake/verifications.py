"""What each asset check last concluded, and on which table versions, kept in the lake beside the
tables: a check whose inputs did not change since it passed reports that pass again without reading
its table, and any other check (inputs changed, failed last time, never run) reads and runs.

Plain deltalake and pyarrow, like the rest of the lake. Each checked table has a small Delta table
`_checks/<table>` with one row per check: its inputs (each table it read, as version and table id,
plus a fingerprint of its rules), its verdict, and, for a pass, its metadata. Row values of the
checked tables are never stored there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
from deltalake.exceptions import CommitFailedError

from .tables import Lake, TableSpec

FOLDER = "_checks"
RULES = "rules"  # the inputs key of the rules fingerprint; every other key is a table

SCHEMA = pa.schema(
    [
        pa.field("check", pa.string(), nullable=False),
        pa.field("inputs", pa.string(), nullable=False),  # JSON object, see `Inputs`
        pa.field("passed", pa.bool_(), nullable=False),
        pa.field("metadata", pa.string()),  # JSON object; a failure keeps none
        pa.field("run_id", pa.string()),
        pa.field("evaluated_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


def ledger_spec(table: str) -> TableSpec:
    """The verification table of the checks on `table`."""
    return TableSpec(f"{FOLDER}/{table}", SCHEMA)


def fingerprint(*parts: str | bytes) -> str:
    """A short digest of what a check's verdict depends on besides its tables: its code, its
    parameters, its detector's patterns."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Pinned:
    """One version of a table, named so it cannot be mistaken for another table's version: a
    table deleted and created again starts its versions over with a new table id."""

    table: str
    version: int
    table_id: str

    @property
    def token(self) -> str:
        return f"{self.version}@{self.table_id}"


def pin(lake: Lake, table: str) -> Pinned | None:
    """The table's current version, from its log alone (None when there is no table)."""
    dt = lake.open(table)
    if dt is None:
        return None
    return Pinned(table, dt.version(), dt.metadata().id)


Inputs = Mapping[str, str]  # table -> Pinned.token, and RULES -> fingerprint


def inputs_of(pins: Sequence[Pinned], rules: str) -> dict[str, str]:
    return {**{p.table: p.token for p in pins}, RULES: rules}


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of one check: its inputs, its verdict and (for a pass) its metadata."""

    check: str
    inputs: Inputs
    passed: bool
    metadata: Mapping[str, object] = field(default_factory=dict)
    run_id: str | None = None
    evaluated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def verifies(self, inputs: Inputs) -> bool:
        """True when this is a pass on exactly these inputs: the same verdict would follow."""
        return self.passed and dict(self.inputs) == dict(inputs)


def last_evaluations(lake: Lake, table: str) -> dict[str, Evaluation]:
    """The latest evaluation of each check on `table`, by check name (empty before the first)."""
    rows = lake.read(ledger_spec(table).name)
    out: dict[str, Evaluation] = {}
    for row in rows.to_pylist() if rows is not None else []:
        evaluation = Evaluation(
            check=row["check"],
            inputs=json.loads(row["inputs"]),
            passed=row["passed"],
            metadata=json.loads(row["metadata"] or "{}"),
            run_id=row["run_id"],
            evaluated_at=row["evaluated_at"],
        )
        known = out.get(evaluation.check)
        if known is None or known.evaluated_at <= evaluation.evaluated_at:
            out[evaluation.check] = evaluation
    return out


def record(lake: Lake, table: str, evaluations: Sequence[Evaluation]) -> bool:
    """Keep `evaluations` as the latest of their checks on `table`, in one commit.

    Returns False when another writer committed first: nothing is kept, so those checks simply
    run again next time (a lost record costs a re-read, never a pass that was not earned).
    """
    if not evaluations:
        return False
    spec = ledger_spec(table)
    kept = last_evaluations(lake, table)
    kept.update({e.check: e for e in evaluations})
    rows = [
        {
            "check": e.check,
            "inputs": json.dumps(dict(e.inputs), sort_keys=True),
            "passed": e.passed,
            # A failure keeps no metadata: it may name rows, and it is never reported again.
            "metadata": json.dumps(dict(e.metadata), default=str) if e.passed else None,
            "run_id": e.run_id,
            "evaluated_at": e.evaluated_at,
        }
        for e in sorted(kept.values(), key=lambda e: e.check)
    ]
    try:
        lake.overwrite(spec, pa.Table.from_pylist(rows, schema=SCHEMA))
    except CommitFailedError:
        return False
    return True


Rule = Callable[[pa.Table], tuple[bool, dict]]


@dataclass(frozen=True)
class Check:
    """A check on one table: its name, the columns it reads, its rule and what else decides it."""

    name: str
    columns: Sequence[str] | None  # None: every column
    rule: Rule  # rows -> (passed, metadata)
    rules: str  # fingerprint of the rule's code and parameters


@dataclass(frozen=True)
class Outcome:
    """What a check concluded in this run: freshly (re_run) or from a pass on the same inputs."""

    check: str
    passed: bool
    metadata: Mapping[str, object]
    re_run: bool
    verified: Pinned | None  # the version the verdict is about (None: there is no table)
    verified_in_run: str | None = None
    verified_at: datetime | None = None


def verify(
    lake: Lake, table: str, checks: Sequence[Check], *, run_id: str | None = None
) -> list[Outcome]:
    """Run `checks` on the current version of `table`, except those that passed on that very
    version with the same rules: those report the pass they earned, without reading the table.

    Every check that runs reads the pinned version (one read for all of them), so a writer that
    commits meanwhile cannot make a verdict about one version be recorded for another. The fresh
    evaluations are recorded for the next run.
    """
    pinned = pin(lake, table)
    last = last_evaluations(lake, table) if pinned is not None else {}
    outcomes: dict[str, Outcome] = {}
    pending: list[tuple[Check, dict[str, str]]] = []
    for check in checks:
        inputs = inputs_of([pinned] if pinned else [], check.rules)
        earlier = last.get(check.name)
        if pinned is not None and earlier is not None and earlier.verifies(inputs):
            outcomes[check.name] = Outcome(
                check.name,
                True,
                earlier.metadata,
                re_run=False,
                verified=pinned,
                verified_in_run=earlier.run_id,
                verified_at=earlier.evaluated_at,
            )
        else:
            pending.append((check, inputs))
    if pending and pinned is None:  # nothing to read: no check can pass on a missing table
        for check, _ in pending:
            outcomes[check.name] = Outcome(
                check.name, False, {"table_missing": table}, re_run=True, verified=None
            )
    elif pending:
        wanted = [check.columns for check, _ in pending]
        columns = None if None in wanted else list(dict.fromkeys(c for cs in wanted for c in cs))
        rows = lake.read(table, columns=columns, version=pinned.version)
        fresh = []
        for check, inputs in pending:
            passed, metadata = check.rule(
                rows if check.columns is None else rows.select(list(check.columns))
            )
            outcomes[check.name] = Outcome(
                check.name, passed, metadata, re_run=True, verified=pinned, verified_in_run=run_id
            )
            fresh.append(Evaluation(check.name, inputs, passed, metadata, run_id))
        record(lake, table, fresh)
    return [outcomes[check.name] for check in checks]
