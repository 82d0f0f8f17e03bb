"""The review queue as operators see it: filtered, sorted and paged, one item with its context.

Reads only redacted tables (review_queue, tagged_rows, redacted_feedback). The queue is read once
per Delta version and kept in memory as Arrow, so filtering and paging stay fast at 100,000 rows.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..lake.tables import Lake

# What an operator can filter by: reasons a row is queued for, and tags that mark a row worth a
# look (a drift window, a low-confidence answer).
REASONS = {
    "negative_without_correction": "negative, no correction",
    "conflict": "conflicting feedback",
    "safety": "safety flag",
    "over_cap": "over the feedback cap",
    "drift_window": "in a drift window",
    "low_confidence": "low confidence",
}
TAG_REASONS = ("drift_window", "low_confidence")
SORTS = {"age": "oldest first", "newest": "newest first", "cluster": "largest cluster first"}
PER_PAGE = 50
_QUEUE_COLUMNS = ["request_id", "reason", "ts", "prompt", "response", "tags"]


@dataclass(frozen=True)
class QueueRow:
    request_id: str
    reasons: list[str]
    ts: datetime
    prompt: str
    response: str
    tags: list[str]
    cluster_size: int


@dataclass(frozen=True)
class QueuePage:
    rows: list[QueueRow]
    total: int  # rows matching the filter
    counts: dict[str, int]  # rows per filter reason, over the whole visible queue
    page: int
    pages: int


@dataclass(frozen=True)
class Item:
    row: QueueRow
    messages: list[dict]
    label: str | None
    confidence: float | None
    feedback: list[dict]
    corrected_twins: list[dict]  # near-duplicate prompts that already have a correction
    next_id: str | None  # the next item in the queue's default order


@dataclass
class _Snapshot:
    version: int
    rows: pa.Table
    reason_masks: dict[str, pa.Array] = field(default_factory=dict)


class ReviewQueue:
    def __init__(self, lake: Lake):
        self.lake = lake
        self._snapshot: _Snapshot | None = None

    def page(
        self,
        *,
        reason: str | None = None,
        sort: str = "age",
        page: int = 1,
        hidden: Collection[str] = (),
        per_page: int = PER_PAGE,
    ) -> QueuePage:
        """One page of the queue; `hidden` are request ids already reviewed here but not yet
        drained by a refresh."""
        if reason is not None and reason not in REASONS:
            raise ValueError(f"unknown reason {reason!r}; one of {', '.join(REASONS)}")
        if sort not in SORTS:
            raise ValueError(f"unknown sort {sort!r}; one of {', '.join(SORTS)}")
        snap = self._current()
        visible = _visible(snap.rows, hidden)
        counts = {r: int(pc.sum(pc.and_(m, visible)).as_py() or 0) for r, m in _masks(snap).items()}
        mask = visible if reason is None else pc.and_(visible, snap.reason_masks[reason])
        rows = snap.rows.filter(mask)
        rows = rows.sort_by(_order(sort))
        pages = max(1, math.ceil(rows.num_rows / per_page))
        page = min(max(1, page), pages)
        chunk = rows.slice((page - 1) * per_page, per_page)
        return QueuePage([_row(r) for r in chunk.to_pylist()], rows.num_rows, counts, page, pages)

    def item(self, request_id: str, *, hidden: Collection[str] = ()) -> Item | None:
        snap = self._current()
        match = snap.rows.filter(pc.equal(snap.rows["request_id"], request_id))
        if match.num_rows == 0:
            return None
        row = _row(match.to_pylist()[0])
        tagged = self.lake.read(
            "tagged_rows",
            columns=["messages", "label", "confidence", "normalized_prompt"],
            filter=pc.field("request_id") == request_id,
        )
        info = tagged.to_pylist()[0] if tagged is not None and tagged.num_rows else {}
        # Feedback on this answer, and side-by-side comparisons it took part in.
        feedback = self.lake.read(
            "redacted_feedback",
            columns=["kind", "score", "comment", "correction", "ts", "request_id"],
            filter=(pc.field("request_id") == request_id)
            | (pc.field("other_request_id") == request_id),
        )
        return Item(
            row=row,
            messages=info.get("messages") or [{"role": "user", "content": row.prompt}],
            label=info.get("label"),
            confidence=info.get("confidence"),
            feedback=sorted(feedback.to_pylist(), key=lambda f: f["ts"]) if feedback else [],
            corrected_twins=self._corrected_twins(request_id, info.get("normalized_prompt")),
            next_id=self._next_after(request_id, hidden),
        )

    def _corrected_twins(self, request_id: str, normalized: str | None) -> list[dict]:
        if not normalized:
            return []
        twins = self.lake.read(
            "tagged_rows",
            columns=["request_id", "prompt", "correction", "correction_source"],
            filter=pc.field("normalized_prompt") == normalized,
        )
        if twins is None:
            return []
        corrected = pc.invert(pc.is_null(twins["correction"]))
        rows = twins.filter(pc.and_(corrected, pc.not_equal(twins["request_id"], request_id)))
        return rows.slice(0, 5).to_pylist()

    def _next_after(self, request_id: str, hidden: Collection[str]) -> str | None:
        """The item after this one in the queue's default order (oldest first), else the first
        other item still waiting."""
        snap = self._current()
        rows = snap.rows.filter(_visible(snap.rows, hidden)).sort_by(_order("age"))
        ids = rows["request_id"].to_pylist()
        if request_id in ids:
            at = ids.index(request_id)
            ids = ids[at + 1 :] + ids[:at]
        return ids[0] if ids else None

    def _current(self) -> _Snapshot:
        dt = self.lake.open("review_queue")
        version = dt.version() if dt is not None else -1
        if self._snapshot is None or self._snapshot.version != version:
            self._snapshot = _load(self.lake, version)
        return self._snapshot


def _load(lake: Lake, version: int) -> _Snapshot:
    rows = lake.read("review_queue", columns=_QUEUE_COLUMNS) if version >= 0 else None
    if rows is None:
        rows = pa.table(
            {
                "request_id": pa.array([], pa.string()),
                "reason": pa.array([], pa.string()),
                "ts": pa.array([], pa.timestamp("us", tz="UTC")),
                "prompt": pa.array([], pa.string()),
                "response": pa.array([], pa.string()),
                "tags": pa.array([], pa.list_(pa.string())),
            }
        )
    rows = rows.combine_chunks()
    clusters = _cluster_sizes(lake, rows)
    rows = rows.append_column("cluster_key", clusters[0]).append_column("cluster_size", clusters[1])
    snap = _Snapshot(version, rows)
    snap.reason_masks = _masks(snap)
    return snap


def _cluster_sizes(lake: Lake, rows: pa.Table) -> tuple[pa.Array, pa.Array]:
    """Each queued row's prompt group (the normalized prompt) and how many queued rows share it."""
    if rows.num_rows == 0:
        return pa.array([], pa.string()), pa.array([], pa.int64())
    tagged = lake.read("tagged_rows", columns=["request_id", "normalized_prompt"])
    keys = rows["request_id"]
    if tagged is not None and tagged.num_rows:
        index = pc.index_in(rows["request_id"], value_set=tagged["request_id"].combine_chunks())
        found = pc.take(tagged["normalized_prompt"].combine_chunks(), index)
        keys = pc.coalesce(found, rows["request_id"])
    keys = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
    counts = pa.table({"k": keys}).group_by("k").aggregate([("k", "count")])
    size = pc.take(counts["k_count"], pc.index_in(keys, value_set=counts["k"]))
    return keys, size.cast(pa.int64())


def _masks(snap: _Snapshot) -> dict[str, pa.Array]:
    if snap.reason_masks:
        return snap.reason_masks
    reason, tags = snap.rows["reason"], snap.rows["tags"]
    masks = {}
    for name in REASONS:
        if name in TAG_REASONS:
            hit = _has_tag(tags, name)
        elif name == "safety":
            hit = pc.match_substring(reason, "safety:")
        else:
            hit = pc.match_substring_regex(reason, f"(^|,){name}(,|$)")
        hit = pc.fill_null(hit, False)
        masks[name] = hit.combine_chunks() if isinstance(hit, pa.ChunkedArray) else hit
    return masks


def _has_tag(tags: pa.ChunkedArray, tag: str) -> pa.Array:
    lists = tags.combine_chunks()
    hits = np.zeros(len(lists), dtype=bool)
    flat = pc.equal(pc.list_flatten(lists), tag).to_numpy(zero_copy_only=False)
    hits[pc.list_parent_indices(lists).to_numpy()[flat]] = True
    return pa.array(hits, pa.bool_())


def _visible(rows: pa.Table, hidden: Collection[str]) -> pa.Array:
    if not hidden:
        return pa.array(np.ones(rows.num_rows, dtype=bool))
    gone = pc.is_in(rows["request_id"], value_set=pa.array(sorted(hidden), pa.string()))
    return pc.invert(gone).combine_chunks()


def _order(sort: str) -> list[tuple[str, str]]:
    if sort == "cluster":
        return [("cluster_size", "descending"), ("cluster_key", "ascending"), ("ts", "ascending")]
    direction = "descending" if sort == "newest" else "ascending"
    return [("ts", direction), ("request_id", "ascending")]


def _row(r: dict) -> QueueRow:
    return QueueRow(
        request_id=r["request_id"],
        reasons=(r["reason"] or "").split(","),
        ts=r["ts"],
        prompt=r["prompt"] or "",
        response=r["response"] or "",
        tags=r["tags"] or [],
        cluster_size=int(r["cluster_size"]),
    )
