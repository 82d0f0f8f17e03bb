"""Curated sets built incrementally, by key.

`curation_state` holds every local row's state (`local.STATE`): ids, normalized prompt, rank,
time, user, no other text. After tagged_rows only gained or re-tagged rows, a build

1. finds the request ids tagging wrote since the state's build (each incremental tagging commit
   stamps its rows' `source_versions`), and the rows that beat one of them in a side-by-side
   choice: only their local rows can have changed;
2. derives the local rows of those request ids again, from their tagged rows and the answers
   they beat, and replaces theirs in the state;
3. runs the global steps (`selection`) over the whole state: a few columns, no text;
4. fetches text only for the rows a set newly takes (changed request ids, or rows a global step
   now chooses, such as a group's new best after a better one left), and commits each set as one
   Delta merge that deletes what left and writes what came.

Anything else (a whole tagging rebuild, an erasure, an expiry, a rollback or re-admission, new
settings, or a curated table written by something else) means a whole build, which gives the same
rows; `changed_request_ids` returns None then.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from deltalake.exceptions import DeltaError

from ..catalog.curated import (
    CURATION_STATE,
    CURATION_STATE_KEY,
    EVAL_CASES,
    REVIEW_QUEUE,
    TAGGED_ROWS,
)
from ..catalog.governance import ROLLBACK_AUDIT
from ..governance.exclusions import Exclusions
from ..lake.tables import MAINTENANCE_OPERATIONS, Lake, TableSpec, VersionUnreadable
from ..privacy.pii import Detector
from .builds import FINGERPRINT_KEY, build_fingerprint, read_or_empty
from .datasets import PUBLISHED, ROW_COLUMNS, assemble, candidate_mask
from .local import STATE, LocalRows, derive
from .quality import CheckOutcome, holdout_checks
from .rules import CurationPolicy
from .selection import CHOSEN, Selection, select

STATE_KEYS = list(CURATION_STATE_KEY)
SETTINGS_KEY = "flywheel.settings"
REDERIVED_KEY = "flywheel.rederived"  # request ids derived again; "all" after a whole build
RETAGGED_KEY = "flywheel.retagged"  # written by tagging: "all" after a whole build


def settings_of(policy: CurationPolicy) -> str:
    return build_fingerprint({}, policy)


@dataclass(frozen=True)
class Changes:
    ids: pa.Array  # request ids tagging wrote since the state's build
    since: int  # the tagged_rows version the state was built from


def changed_request_ids(
    lake: Lake, policy: CurationPolicy, versions: dict[str, int]
) -> Changes | None:
    """The request ids tagging wrote since the state's build, or None when only a whole build is
    exact (see the module's docstring)."""
    built = lake.last_commit_metadata(CURATION_STATE.name)
    if not built or built.get(SETTINGS_KEY) != settings_of(policy):
        return None
    built_from = json.loads(built.get("source_versions") or "{}")
    if built_from.get(ROLLBACK_AUDIT.name) != versions[ROLLBACK_AUDIT.name]:
        return None
    fingerprint = built.get(FINGERPRINT_KEY)
    for spec in PUBLISHED:
        if lake.last_commit_metadata(spec.name).get(FINGERPRINT_KEY) != fingerprint:
            return None  # written by something else since (a rollback, an erasure, a crash)
    since = built_from.get(TAGGED_ROWS.name, -1)
    stamps = _tagging_stamps_since(lake, since)
    if stamps is None:
        return None
    if not stamps:
        return Changes(pa.array([], pa.string()), since)
    rows = read_or_empty(
        lake,
        TAGGED_ROWS,
        pc.field("source_versions").isin(sorted(stamps)),
        columns=["request_id"],
    )
    return Changes(pc.unique(rows["request_id"].combine_chunks()).cast(pa.string()), since)


# What a tagged row's local rows read, besides `tags` (of which only "conflict" counts) and the
# conversation, prompt and answer, which never change for a request id.
_DERIVED_FROM = [c for c in ROW_COLUMNS if c not in ("tags", "messages", "prompt", "response")]


def _split(lake: Lake, changes: Changes) -> tuple[pl.Series, pl.DataFrame]:
    """The changed request ids whose local rows may differ, and (request_id, tags) of those
    where only tags other than "conflict" moved: their local rows are the same, and only the
    review queue, which shows tags, needs them."""
    wanted = pc.field("request_id").isin(changes.ids)
    columns = [*_DERIVED_FROM, "tags"]
    now = pl.from_arrow(read_or_empty(lake, TAGGED_ROWS, wanted, columns))
    try:
        before = lake.read(TAGGED_ROWS.name, columns=columns, filter=wanted, version=changes.since)
    except (DeltaError, OSError, VersionUnreadable):  # vacuumed: take every id as changed
        before = None
    assert isinstance(now, pl.DataFrame)
    if before is None or before.num_rows == 0:
        return now["request_id"], pl.DataFrame(
            schema={"request_id": pl.String, "tags": now.schema["tags"]}
        )
    old = pl.from_arrow(before)
    assert isinstance(old, pl.DataFrame)
    both = now.join(old, on="request_id", how="left", suffix="_before")
    same = pl.all_horizontal(
        [pl.col(c).eq_missing(pl.col(f"{c}_before")) for c in _DERIVED_FROM if c != "request_id"]
        + [
            pl.col("tags")
            .list.contains("conflict")
            .fill_null(False)
            .eq(pl.col("tags_before").list.contains("conflict").fill_null(False)),
            pl.col("ts_before").is_not_null(),
        ]
    )
    both = both.with_columns(_same=same)
    full = both.filter(~pl.col("_same"))["request_id"]
    retag = both.filter(pl.col("_same") & ~pl.col("tags").eq_missing(pl.col("tags_before")))
    return full, retag.select("request_id", "tags")


def _tagging_stamps_since(lake: Lake, version: int) -> set[str] | None:
    """The `source_versions` stamp of each incremental tagging commit after `version`; None if
    any commit since did something else (or the log no longer reaches back)."""
    dt = lake.open(TAGGED_ROWS.name)
    if dt is None or version < 0 or dt.version() < version:
        return None
    commits = [c for c in dt.history(limit=dt.version() - version + 1) if c["version"] > version]
    if len(commits) != dt.version() - version:
        return None
    stamps = set()
    for commit in commits:
        if commit.get("operation") in MAINTENANCE_OPERATIONS:
            continue
        retagged = commit.get(RETAGGED_KEY)
        if retagged is None or retagged == "all" or "source_versions" not in commit:
            return None
        # The same serialization `finalize` stamps on every row.
        stamps.add(json.dumps(json.loads(commit["source_versions"]), sort_keys=True))
    return stamps


@dataclass
class Increment:
    """What an incremental build changes: per published set, the rows to write (already in the
    set's schema, not yet finalized) and the ids to delete; and the state rows it replaces."""

    changed: pa.Array  # request ids whose local rows were derived again
    selection: Selection
    state_written: pl.DataFrame  # the state rows of those request ids, derived again
    state_deleted: pl.DataFrame  # the keys of the state rows they had
    written: dict[str, pa.Table] = field(default_factory=dict)
    deleted: dict[str, pa.Array] = field(default_factory=dict)
    rolled_back: dict[str, int] = field(default_factory=dict)


def increment(
    lake: Lake,
    changes: Changes,
    policy: CurationPolicy,
    key: bytes,
    detector: Detector,
    exclusions: Exclusions,
) -> Increment:
    changed, retagged = _split(lake, changes)
    state = read_state(lake)
    beats = state.filter((pl.col("set") == "beats") & pl.col("row_id").is_in(changed.implode()))
    again = pl.concat([changed.cast(pl.String), beats["request_id"]]).unique()
    local = _derive_for(lake, again, policy, key, detector)
    mine = pl.col("request_id").is_in(again.implode())
    fresh = local.state()
    gone_state = state.filter(mine).select(STATE_KEYS)
    state = pl.concat([state.filter(~mine), fresh])
    selection = select(state, policy, excluded_by_set(exclusions))
    out = Increment(again.to_arrow().cast(pa.string()), selection, fresh, gone_state)
    out.rolled_back = selection.left_out

    # Rows a set newly takes whose request id did not change (a global step chose them now):
    # their local rows are derived again too, from their unchanged tagged rows.
    plans = {}
    fetch: list[pl.Series] = []
    again_ids = again.implode()
    for spec in PUBLISHED:
        published = _published(lake, spec)
        chosen = selection.ids[spec.name]
        taken = chosen.join(published, on=CHOSEN, how="anti")
        fetch.append(taken.filter(~pl.col("request_id").is_in(again_ids))["request_id"])
        write = pl.concat([chosen.filter(pl.col("request_id").is_in(again_ids)), taken])
        gone = published.join(chosen, on=CHOSEN, how="anti")
        plans[spec] = (write.unique(maintain_order=True), gone["row_id"])
    others = pl.concat(fetch).unique()
    extra = _derive_for(lake, others, policy, key, detector) if others.len() else None
    for spec, (write, gone) in plans.items():
        chosen = Selection({spec.name: write})
        parts = [assemble(local, chosen, spec)]
        if extra is not None:
            parts.append(assemble(extra, chosen, spec))
        if spec.name == REVIEW_QUEUE.name:
            parts.append(_with_new_tags(lake, retagged, write["request_id"]))
        out.written[spec.name] = pa.concat_tables(parts)
        out.deleted[spec.name] = gone.to_arrow().cast(pa.string())
    return out


def _with_new_tags(lake: Lake, retagged: pl.DataFrame, written: pl.Series) -> pa.Table:
    """The published review rows of `retagged` (not written anyway) with their new tags."""
    retagged = retagged.filter(~pl.col("request_id").is_in(written.implode()))
    ids = retagged["request_id"].implode()
    # Polars reads the files a merge wrote with string views, where Arrow's filters cannot.
    scan = pl.scan_delta(lake.uri(REVIEW_QUEUE.name), storage_options=lake.options())
    rows = scan.filter(pl.col("request_id").is_in(ids)).collect()
    rows = rows.drop("tags").join(retagged, on="request_id", how="inner")
    table = rows.to_arrow(compat_level=pl.CompatLevel.oldest())
    return table.select(REVIEW_QUEUE.schema.names).cast(REVIEW_QUEUE.schema)


def excluded_by_set(exclusions: Exclusions) -> dict[str, list[str]]:
    """Per published set, the request ids a rollback of that set took away."""
    out = {}
    for spec in PUBLISHED:
        ids = exclusions.values("source_request_ids", scope=spec.name)
        if len(ids):
            out[spec.name] = ids.to_pylist()
    return out


def _derive_for(
    lake: Lake, ids: pl.Series, policy: CurationPolicy, key: bytes, detector: Detector
) -> LocalRows:
    """The local rows of `ids`, from their tagged rows and those of the answers they beat."""
    wanted = ids.to_arrow().cast(pa.string())
    rows = read_or_empty(lake, TAGGED_ROWS, pc.field("request_id").isin(wanted), list(ROW_COLUMNS))
    losers = pc.unique(pc.list_flatten(rows["preferred_over"]))
    losers = losers.filter(pc.invert(pc.is_in(losers, value_set=wanted)))
    if len(losers):
        beaten = read_or_empty(
            lake, TAGGED_ROWS, pc.field("request_id").isin(losers), list(ROW_COLUMNS)
        )
        rows = pa.concat_tables([rows, beaten])
    # Rows no set can use give no local rows (their old ones go with the rest of `ids`).
    rows = rows.filter(candidate_mask(rows)) if rows.num_rows else rows
    return derive(rows, policy, key, detector, owners=wanted)


def _published(lake: Lake, spec: TableSpec) -> pl.DataFrame:
    """The published set's (row_id, request_id) pairs: each row and the request id that gave
    it."""
    key = spec.schema.names[0]
    if spec.name == REVIEW_QUEUE.name:
        table = read_or_empty(lake, spec, columns=[key])
        source = table[key]
    elif spec.name == EVAL_CASES.name:
        table = read_or_empty(lake, spec, columns=[key, "source_request_id"])
        source = table["source_request_id"]
    else:
        table = read_or_empty(lake, spec, columns=[key, "source_request_ids"])
        source = pc.list_element(table["source_request_ids"].combine_chunks(), 0)
    frame = pl.DataFrame({"row_id": pl.Series(table[key]), "request_id": pl.Series(source)})
    return frame.cast(pl.String)


def read_state(lake: Lake) -> pl.DataFrame:
    table = lake.read(CURATION_STATE.name)
    if table is None:
        return pl.DataFrame(schema=STATE)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame.select(pl.col(c).cast(t) for c, t in STATE.items())


def same_state(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    """True when two states hold the same local rows, whatever their order."""
    if a.height != b.height:
        return False
    order = [*STATE_KEYS, "sub"]
    a, b = (f.select(pl.col(c).cast(t) for c, t in STATE.items()).sort(order) for f in (a, b))
    return a.equals(b)


def state_table(state: pl.DataFrame) -> pa.Table:
    return state.to_arrow(compat_level=pl.CompatLevel.oldest()).cast(CURATION_STATE.schema)


def merge(
    lake: Lake,
    spec: TableSpec,
    keys: list[str],
    rows: pa.Table,
    delete: pa.Table,
    metadata: dict,
) -> None:
    """One commit that deletes the rows whose `keys` are in `delete` and writes `rows` (replacing
    any with the same keys). It rewrites only the files holding a replaced or deleted row."""
    lake.ensure(spec)
    rows = rows.select(spec.schema.names).cast(spec.schema)
    key_schema = rows.select(keys).schema
    doomed = pa.concat_tables([rows.select(keys), delete.select(keys).cast(key_schema)])
    doomed = doomed.group_by(keys).aggregate([])
    result = lake.replace(
        spec.name, lambda data: _keys_in(data, keys, doomed), rows, metadata=metadata
    )
    if result.version_after == result.version_before:  # nothing changed: record the build
        lake.append(spec, spec.schema.empty_table(), metadata=metadata)


def _keys_in(data: pa.Table, keys: list[str], wanted: pa.Table) -> pa.Array:
    """Whether each row's `keys` are among the rows of `wanted`."""
    if len(wanted) == 0 or data.num_rows == 0:
        return pa.array(np.zeros(data.num_rows, bool))
    if len(keys) == 1:
        return pc.is_in(data[keys[0]], value_set=wanted[keys[0]].combine_chunks())
    numbered = data.select(keys).append_column("_row", pa.array(np.arange(data.num_rows)))
    hit = numbered.join(wanted.cast(numbered.select(keys).schema), keys, join_type="inner")
    mask = np.zeros(data.num_rows, bool)
    mask[hit["_row"].to_numpy()] = True
    return pa.array(mask)


def holdout_leakage(
    lake: Lake, written: dict[str, pa.Table], deleted: dict[str, pa.Array]
) -> list[CheckOutcome]:
    """`no_holdout_leakage` over what each set will hold once the increment is published: its
    published rows, less those deleted or replaced, plus those written."""
    after = {
        spec.name: _after(lake, spec, written[spec.name], deleted[spec.name])
        for spec in PUBLISHED
        if spec.name != REVIEW_QUEUE.name
    }
    return holdout_checks(after)


def _after(lake: Lake, spec: TableSpec, written: pa.Table, deleted: pa.Array) -> pa.Table:
    key = spec.schema.names[0]
    columns = [key, "normalized_prompt"] + (["holdout"] if spec.name == EVAL_CASES.name else [])
    kept = read_or_empty(lake, spec, columns=columns)
    replaced = pa.concat_arrays([deleted.cast(pa.string()), written[key].combine_chunks()])
    kept = kept.filter(pc.invert(pc.is_in(kept[key], value_set=replaced)))
    return pa.concat_tables([kept, written.select(columns).cast(kept.schema)])
