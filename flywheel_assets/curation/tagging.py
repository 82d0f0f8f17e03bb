"""Tag every kept interaction with its feedback, annotations, label and safety flags.

A full build tags all of them; after the redacted tables only gained rows, only the interactions
those rows can change are tagged again and merged in.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..catalog.curated import TAGGED_ROWS
from ..catalog.governance import ROLLBACK_AUDIT
from ..catalog.redacted import REDACTED_ANNOTATIONS, REDACTED_FEEDBACK, REDACTED_LOGS
from ..contract.records import DRIFT_EVENTS
from ..gcpause import paused_gc
from ..governance.exclusions import Exclusions
from ..governance.tombstones import without_erased
from ..lake.changes import appended_since
from ..lake.spill import Spill, spill_directory
from ..lake.tables import Lake
from ..privacy.pii import Detector
from ..privacy.sampling import DriftWindow, drift_windows, in_any_window
from .builds import (
    FINGERPRINT_KEY,
    build_fingerprint,
    commit_meta,
    read_or_empty,
    source_versions,
)
from .caps import cap_affected, over_cap_feedback
from .datasets import CurationPolicy, finalize
from .lists import exploded, sorted_sets
from .normalize import normalize_text
from .quality import CheckOutcome, audit_curated
from .safety import safety_flags
from .signals import SignalWeights, collect_signals, tag_rows
from .signals import conflict_key as _conflict_key

SOURCES = (
    REDACTED_LOGS.name,
    REDACTED_FEEDBACK.name,
    REDACTED_ANNOTATIONS.name,
    DRIFT_EVENTS.table,
)
# A full build tags this many interactions at a time, so its memory stays flat as the lake grows.
PART_ROWS = 200_000
SETTINGS_KEY = "flywheel.settings"  # the settings alone: a change means a rebuild
LEFT_OUT_KEY = "flywheel.rolled_back_rows"  # interactions and annotations exclusions left out


@dataclass(frozen=True)
class FeedbackCap:
    max_per_window: int = 20
    window_hours: float = 24.0


@dataclass
class TaggingReport:
    committed: bool
    source_versions: dict[str, int]
    rows: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    over_cap_feedback: int = 0
    rolled_back: int = 0  # source rows left out because a rollback excluded them
    retagged: int | None = None  # rows tagged again and merged in; None after a full rebuild
    checks: list[CheckOutcome] = field(default_factory=list)  # empty when nothing was rebuilt


@paused_gc()
def build_tagged_rows(
    lake: Lake,
    detector: Detector,
    weights: SignalWeights,
    cap: FeedbackCap,
    policy: CurationPolicy,
) -> TaggingReport:
    """Tag every kept interaction. When the sources only gained rows since the last build (with
    the same settings and exclusions), only the interactions those rows can change are tagged
    again and merged in; anything else (an erasure, a rollback, new settings) rebuilds whole."""
    versions = source_versions(lake, (*SOURCES, ROLLBACK_AUDIT.name))
    settings = build_fingerprint({}, weights, cap, policy)
    fingerprint = build_fingerprint(versions, weights, cap, policy)
    previous = lake.last_commit_metadata(TAGGED_ROWS.name)
    if previous.get(FINGERPRINT_KEY) == fingerprint:
        return TaggingReport(committed=False, source_versions=versions)

    # Rows a rollback took away upstream (or from tagged_rows itself) stay out until re-admitted.
    exclusions = Exclusions.load(lake)
    feedback, left_out = exclusions.drop(read_or_empty(lake, REDACTED_FEEDBACK), "feedback_id")
    drift = lake.read(DRIFT_EVENTS.table, columns=["event_id", "ts", "window_hours"])
    if drift is not None:
        drift, n = exclusions.drop(drift, "event_id")
        left_out += n
    # Over-cap depends on each user's whole history, so it is always computed over all feedback.
    capped = over_cap_feedback(
        feedback["user_hash"],
        feedback["ts"],
        max_per_window=cap.max_per_window,
        window_hours=cap.window_hours,
    )
    inputs = _Inputs(
        feedback, capped, exclusions, drift_windows(drift), weights, policy, detector, versions
    )
    changed = None
    if previous.get(SETTINGS_KEY) == settings:
        built_from = json.loads(previous.get("source_versions") or "{}")
        changed = changed_request_ids(lake, built_from, versions, feedback, cap)
    groups = [changed] if changed is not None else _prompt_groups(lake, PART_ROWS)

    labels: Counter[str] = Counter()
    audits, tagged, left_out_now = [], 0, 0
    with spill_directory(lake.root, "tagged") as tmp:
        spill = Spill(Path(tmp) / "tagged_rows.arrow", TAGGED_ROWS.schema)
        for ids in groups:
            out, dropped = _tag_some(lake, ids, inputs)
            # Write-audit-publish: nothing is published unless every part passes its checks.
            audits.append(audit_curated({TAGGED_ROWS.name: out}, detector))
            labels.update(_counts(out["label"]))
            left_out_now += dropped
            tagged += out.num_rows
            spill.write(out)
            del out
        checks = _merged_outcomes(audits)
        published = all(c.passed for c in checks)
        # After an incremental build the exclusions are those of the last build, and so is what
        # they left out.
        upstream_left_out = (
            left_out_now if changed is None else int(previous.get(LEFT_OUT_KEY, "0"))
        )
        metadata = commit_meta(fingerprint, versions) | {
            SETTINGS_KEY: settings,
            LEFT_OUT_KEY: str(upstream_left_out),
            "flywheel.retagged": str(tagged) if changed is not None else "all",
        }
        if published and changed is None:
            # Tombstones re-read at commit time: an erasure may have begun since the inputs.
            lake.overwrite(TAGGED_ROWS, without_erased(lake, spill.reader()), metadata=metadata)
        elif published and tagged:
            rows = without_erased(lake, spill.reader().read_all())
            lake.upsert(TAGGED_ROWS, rows, key="request_id", metadata=metadata)
        elif published:  # new rows that change no interaction: record the build, rewrite nothing
            lake.append(TAGGED_ROWS, TAGGED_ROWS.schema.empty_table(), metadata=metadata)
    if changed is not None:
        labels = _counts(lake.read(TAGGED_ROWS.name, columns=["label"])["label"])
    return TaggingReport(
        committed=published,
        checks=checks,
        source_versions=versions,
        rows=sum(labels.values()),
        labels=dict(labels),
        over_cap_feedback=int(pc.sum(capped).as_py() or 0),
        rolled_back=left_out + upstream_left_out,
        retagged=tagged if changed is not None else None,
    )


@dataclass(frozen=True)
class _Inputs:
    """What tagging any group of interactions needs from the whole lake."""

    feedback: pa.Table
    capped: pa.Array
    exclusions: Exclusions
    windows: list[DriftWindow]
    weights: SignalWeights
    policy: CurationPolicy
    detector: Detector
    versions: dict[str, int]


def _tag_some(lake: Lake, ids: pa.Array | None, inputs: _Inputs) -> tuple[pa.Table, int]:
    """The finished tagged rows of the interactions in `ids` (all of them when None), and how
    many source rows the exclusions left out."""
    only = None if ids is None else pc.field("request_id").isin(ids)
    logs, n = inputs.exclusions.drop(read_or_empty(lake, REDACTED_LOGS, only), "request_id")
    annotations, m = inputs.exclusions.drop(
        read_or_empty(lake, REDACTED_ANNOTATIONS, only), "annotation_id"
    )
    feedback, capped = inputs.feedback, inputs.capped
    if ids is not None:
        # Feedback about these interactions, and comparisons they lost.
        touches = pc.or_(
            pc.fill_null(pc.is_in(feedback["request_id"], value_set=ids), False),
            pc.fill_null(pc.is_in(feedback["other_request_id"], value_set=ids), False),
        )
        feedback, capped = feedback.filter(touches), pc.filter(capped, touches)
    tagged = tag_interactions(
        logs,
        feedback,
        capped,
        annotations,
        windows=inputs.windows,
        weights=inputs.weights,
        policy=inputs.policy,
        detector=inputs.detector,
    )
    return finalize(tagged, TAGGED_ROWS, inputs.versions), n + m


def tag_interactions(
    logs: pa.Table,
    feedback: pa.Table,
    over_cap: pa.Array,
    annotations: pa.Table,
    *,
    windows: list[DriftWindow],
    weights: SignalWeights,
    policy: CurationPolicy,
    detector: Detector,
) -> pa.Table:
    """The tagged rows of one key group of interactions (`logs`), before `finalize`.

    `feedback` holds (at least) the feedback about them and the comparisons they lost, with
    `over_cap` computed over each user's whole history; `annotations`, (at least) theirs. Rows
    with the same normalized prompt and answer must be in the same group: `conflict` compares
    them. Pure: no lake, no Dagster.
    """
    # A row is safety-flagged when its prompt or its answer trips the breaker.
    flags = _content_flags(logs["prompt"], logs["response"], policy, detector)
    signals = collect_signals(feedback, annotations, over_cap, weights)
    tagged = tag_rows(
        logs,
        signals,
        windows,
        weights,
        extra_tags={"safety_flag": pc.greater(pc.list_value_length(flags), 0)},
    )
    return _with_provenance(tagged.append_column("safety_flags", flags))


def _prompt_groups(lake: Lake, rows_per_group: int) -> list[pa.Array | None]:
    """The interactions in groups of about `rows_per_group`, every normalized prompt wholly in
    one group (a row's `conflict` tag depends on the rows that share its prompt); [None], meaning
    all at once, when they fit in one."""
    stats = lake.stats(REDACTED_LOGS.name)
    if stats is None or stats.rows <= rows_per_group:
        return [None]
    logs = read_or_empty(lake, REDACTED_LOGS, columns=["request_id", "prompt"])
    parts = -(-logs.num_rows // rows_per_group)
    prompts = pc.dictionary_encode(normalize_text(logs["prompt"])).indices
    group = pc.fill_null(prompts, 0).to_numpy(zero_copy_only=False) % parts
    ids = logs["request_id"].combine_chunks()
    return [ids.filter(pa.array(group == g)) for g in range(parts)]


def _counts(values: pa.ChunkedArray | pa.Array) -> Counter[str]:
    return Counter({x["values"]: x["counts"] for x in pc.value_counts(values).to_pylist()})


def _merged_outcomes(audits: list[list[CheckOutcome]]) -> list[CheckOutcome]:
    """One outcome per check over every part: passed if it passed everywhere, counts summed."""
    out = []
    for same in zip(*audits, strict=True):
        metadata: dict = {}
        for outcome in same:
            for k, v in outcome.metadata.items():
                if isinstance(v, dict):
                    metadata[k] = dict(Counter(metadata.get(k, {})) + Counter(v))
                elif isinstance(v, int):
                    metadata[k] = metadata.get(k, 0) + v
                else:
                    metadata.setdefault(k, v)
        first = same[0]
        out.append(CheckOutcome(first.table, first.check, all(o.passed for o in same), metadata))
    return out


def changed_request_ids(
    lake: Lake,
    built_from: dict[str, int],
    versions: dict[str, int],
    feedback: pa.Table,
    cap: FeedbackCap,
) -> pa.Array | None:
    """The interactions whose tags rows appended since `built_from` can change, or None when the
    sources did more than gain rows (or the exclusions changed): then only a rebuild is exact.

    An interaction changes when it is new, when feedback or an annotation about it (or a
    comparison against it) arrived, when its user's cap may count one of its feedback events
    differently (only a user past the cap, and only events up to a window after new ones), or when
    a new drift window covers it; and with it every row that shares its prompt and answer, whose
    `conflict` tag depends on its label.
    """
    if not built_from or built_from.get(ROLLBACK_AUDIT.name) != versions[ROLLBACK_AUDIT.name]:
        return None
    new: dict[str, pa.Table] = {}
    for name, columns in (
        (REDACTED_LOGS.name, ["request_id"]),
        (REDACTED_FEEDBACK.name, ["feedback_id", "request_id", "other_request_id"]),
        (REDACTED_ANNOTATIONS.name, ["request_id"]),
        (DRIFT_EVENTS.table, ["event_id", "ts", "window_hours"]),
    ):
        rows = appended_since(lake, name, built_from.get(name, -1), columns=columns)
        if rows is None:
            return None
        if rows.num_columns:
            new[name] = rows
    ids = [
        t[c]
        for t in new.values()
        for c in ("request_id", "other_request_id")
        if c in t.schema.names
    ]
    if REDACTED_FEEDBACK.name in new and feedback.num_rows:
        # New feedback can move which of its user's events are over the cap.
        arrived = pc.is_in(
            feedback["feedback_id"], value_set=new[REDACTED_FEEDBACK.name]["feedback_id"]
        )
        moved = cap_affected(
            feedback["user_hash"],
            feedback["ts"],
            pc.fill_null(arrived, False).to_numpy(zero_copy_only=False),
            max_per_window=cap.max_per_window,
            window_hours=cap.window_hours,
        )
        theirs = feedback.filter(pa.array(moved))
        ids += [theirs["request_id"], theirs["other_request_id"]]
    if DRIFT_EVENTS.table in new:
        logs = read_or_empty(lake, REDACTED_LOGS, columns=["request_id", "ts"])
        inside = in_any_window(logs["ts"], drift_windows(new[DRIFT_EVENTS.table]))
        ids.append(logs["request_id"].filter(inside))
    changed = _unique_ids(ids)
    return pa.concat_arrays([changed, _same_prompt_and_answer(lake, changed)])


def _same_prompt_and_answer(lake: Lake, changed: pa.Array) -> pa.Array:
    """Tagged rows outside `changed` with the same normalized prompt and answer as a changed
    row."""
    if len(changed) == 0:
        return pa.array([], pa.string())
    mine = read_or_empty(
        lake, REDACTED_LOGS, pc.field("request_id").isin(changed), ["prompt", "response"]
    )
    prompts = normalize_text(mine["prompt"])
    keys = _conflict_key(prompts, mine["response"])
    tagged = lake.read(TAGGED_ROWS.name, columns=["request_id", "normalized_prompt"])
    if tagged is None or len(keys) == 0:
        return pa.array([], pa.string())
    same_prompt = pc.and_(
        pc.is_in(tagged["normalized_prompt"], value_set=prompts),
        pc.invert(pc.is_in(tagged["request_id"], value_set=changed)),
    )
    ids = tagged["request_id"].filter(same_prompt)
    if len(ids) == 0:
        return pa.array([], pa.string())
    others = lake.read(
        TAGGED_ROWS.name,
        columns=["request_id", "normalized_prompt", "response"],
        filter=pc.field("request_id").isin(ids),
    )
    hit = pc.is_in(_conflict_key(others["normalized_prompt"], others["response"]), value_set=keys)
    return others["request_id"].filter(hit).combine_chunks()


def _unique_ids(parts: list) -> pa.Array:
    arrays = [c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in parts]
    arrays = [a.cast(pa.string()) for a in arrays if len(a)]
    if not arrays:
        return pa.array([], pa.string())
    return pc.drop_null(pc.unique(pa.concat_arrays(arrays)))


def _content_flags(prompts, responses, policy: CurationPolicy, detector: Detector) -> pa.Array:
    """Per row, the sorted safety flags of its prompt and of its answer together."""
    # Length limits are for training targets; here only what the text says matters.
    ignored = pa.array(["too_short", "too_long", "empty"])
    rows, values = [], []
    for texts in (prompts, responses):
        row, flag = exploded(safety_flags(texts, policy.safety, detector))
        kept = pc.invert(pc.is_in(flag, value_set=ignored))
        rows.append(row[kept.to_numpy(zero_copy_only=False)])
        values.append(flag.filter(kept))
    return sorted_sets(len(prompts), rows, values)


def _with_provenance(tagged: pa.Table) -> pa.Table:
    n = tagged.num_rows
    # Each row's own id as a one-element list.
    own_id = pa.ListArray.from_arrays(
        pa.array(np.arange(n + 1, dtype=np.int32)), tagged["request_id"].combine_chunks()
    )
    return (
        tagged.append_column("source_request_ids", own_id)
        .append_column("source_versions", pa.nulls(n, pa.string()))
        .append_column("_curated_at", pa.nulls(n, TAGGED_ROWS.schema.field("_curated_at").type))
    )
