"""Failure clusters: negatively rated or corrected prompts grouped with their near-duplicates, so a
weak spot of the model shows as one row with its size, its negative rate and a few examples.

Prompts are compared as normalized text with digits masked (order numbers, dates and versions are
slot values, not intent), grouped by the curation's near-duplicate grouping (MinHash LSH and
sorted neighbourhoods, verified with rapidfuzz, joined by union-find: linear in the distinct
prompts), and aggregated in Polars.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from ..catalog.curated import (
    DPO_SET,
    EVAL_CASES,
    FAILURE_CLUSTERS,
    KTO_SET,
    REVIEW_QUEUE,
    SFT_SET,
    TAGGED_ROWS,
)
from ..lake.tables import Lake
from .builds import FINGERPRINT_KEY, build_fingerprint, commit_meta, source_versions
from .dedup import near_duplicate_groups
from .signals import NEGATIVE

# The curated sets a cluster's rows can feed, by their provenance column.
FED_SETS = (SFT_SET.name, DPO_SET.name, KTO_SET.name, EVAL_CASES.name, REVIEW_QUEUE.name)
SOURCES = (TAGGED_ROWS.name, *FED_SETS)
TAGGED_COLUMNS = [
    "request_id",
    "ts",
    "prompt",
    "normalized_prompt",
    "label",
    "correction",
    "edited_response",
]
_ID_SALT = b"flywheel.failure_cluster\x1f"


class UnknownCluster(LookupError):
    """A cluster id that the current failure_clusters table does not hold."""

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class ClusterPolicy:
    """What makes a failure cluster."""

    min_size: int = 5  # failing rows (negative or corrected) a cluster needs to be kept
    similarity: float = 0.85  # Indel similarity of two masked prompts in one cluster
    examples: int = 3  # redacted prompts shown per cluster

    def __post_init__(self):
        if isinstance(self.min_size, bool) or not isinstance(self.min_size, int):
            raise ValueError(f"min_size must be an integer, got {self.min_size!r}")
        if self.min_size < 1:
            raise ValueError(f"min_size must be at least 1, got {self.min_size}")
        if not 0 < self.similarity <= 1:
            raise ValueError(f"similarity must be in (0, 1], got {self.similarity}")
        if self.examples < 0:
            raise ValueError(f"examples must be 0 or more, got {self.examples}")


def cluster_id(representative: str) -> str:
    """A cluster's id: a hash of its representative masked prompt, the same in every build."""
    return hashlib.sha256(_ID_SALT + representative.encode()).hexdigest()[:16]


def mask_digits(normalized: pl.Expr) -> pl.Expr:
    return normalized.str.replace_all(r"\d+", "0")


def size_bucket(size: int, threshold: int) -> int | None:
    """The largest threshold * 2**k at or below `size` (None below the threshold): a cluster
    moves to the next bucket only when it doubles."""
    if threshold < 1:
        raise ValueError(f"the cluster size threshold must be at least 1, got {threshold}")
    if size < threshold:
        return None
    bucket = threshold
    while bucket * 2 <= size:
        bucket *= 2
    return bucket


def failure_clusters(
    tagged: pa.Table, feeds: pa.Table | None = None, policy: ClusterPolicy = ClusterPolicy()
) -> pa.Table:
    """One row per failure cluster (FAILURE_CLUSTERS' schema), largest first.

    `tagged` holds tagged_rows' TAGGED_COLUMNS; `feeds` (request_id, set) says which curated set
    each request feeds. A row fails when it is labelled negative or carries a correction or a
    user's edit; a cluster's `rows` counts every row of its prompts, failing or not.
    """
    missing = sorted(set(TAGGED_COLUMNS) - set(tagged.column_names))
    if missing:
        raise ValueError(f"tagged rows lack the columns {missing}")
    rows = (
        pl.from_arrow(tagged.select(TAGGED_COLUMNS))
        .filter(pl.col("normalized_prompt").is_not_null() & pl.col("request_id").is_not_null())
        .with_columns(
            masked=mask_digits(pl.col("normalized_prompt")),
            corrected=pl.col("correction").is_not_null() | pl.col("edited_response").is_not_null(),
        )
        .with_columns(failing=(pl.col("label") == NEGATIVE).fill_null(False) | pl.col("corrected"))
    )
    if not rows.height or not rows["failing"].any():
        return FAILURE_CLUSTERS.schema.empty_table()
    # Only prompts that share a cluster with a failing one matter; grouping every distinct prompt
    # (sorted, so group numbers depend on content alone) is what counts their good rows too.
    uniques = rows["masked"].unique().sort()
    groups = near_duplicate_groups(uniques.to_arrow().cast(pa.string()), policy.similarity)
    rows = rows.join(
        pl.DataFrame({"masked": uniques, "group": pl.Series(groups.to_numpy())}), on="masked"
    )
    totals = rows.group_by("group").agg(
        size=pl.col("failing").sum().cast(pl.Int64),
        rows=pl.len().cast(pl.Int64),
        corrected=pl.col("corrected").sum().cast(pl.Int64),
        source_request_ids=pl.col("request_id").unique().sort(),
    )
    totals = totals.filter(pl.col("size") >= policy.min_size)
    failing = rows.filter(pl.col("failing")).join(totals.select("group"), on="group", how="semi")
    # The representative: the cluster's most frequent failing prompt (ties: the smallest), which
    # new variants rarely displace, so the id it names survives rebuilds.
    representative = (
        failing.group_by("group", "masked")
        .len()
        .sort(["group", "len", "masked"], descending=[False, True, False])
        .group_by("group", maintain_order=True)
        .first()
        .select("group", representative=pl.col("masked"))
    )
    seen = failing.group_by("group").agg(
        first_seen=pl.col("ts").min(), last_seen=pl.col("ts").max()
    )
    examples = (
        failing.sort(["ts", "request_id"], descending=[True, False])
        .unique(["group", "prompt"], keep="first", maintain_order=True)
        .filter(pl.col("prompt").is_not_null())
        .group_by("group", maintain_order=True)
        .agg(examples=pl.col("prompt").head(policy.examples))
    )
    out = totals.join(representative, on="group").join(seen, on="group")
    out = out.join(examples, on="group", how="left").join(
        _sets(rows, feeds), on="group", how="left"
    )
    ids = [cluster_id(r) for r in out["representative"]]
    out = out.with_columns(
        cluster_id=pl.Series(ids, dtype=pl.String),
        negative_rate=pl.col("size") / pl.col("rows"),
        examples=pl.col("examples").fill_null([]),
        sets=pl.col("sets").fill_null([]),
    ).sort(["size", "cluster_id"], descending=[True, False])
    return out.select(FAILURE_CLUSTERS.schema.names).to_arrow().cast(FAILURE_CLUSTERS.schema)


def _sets(rows: pl.DataFrame, feeds: pa.Table | None) -> pl.DataFrame:
    if feeds is None or feeds.num_rows == 0:
        return pl.DataFrame(
            {"group": [], "sets": []}, schema={"group": pl.Int64, "sets": pl.List(pl.String)}
        )
    fed = pl.from_arrow(feeds.select(["request_id", "set"])).unique()
    return (
        rows.select("group", "request_id")
        .join(fed, on="request_id")
        .group_by("group")
        .agg(sets=pl.col("set").unique().sort())
    )


def fed_sets(lake: Lake) -> pa.Table:
    """(request_id, set) for every request a curated set holds a row of."""
    parts = []
    for name in FED_SETS:
        table = lake.read(name, columns=["source_request_ids"])
        if table is None or table.num_rows == 0:
            continue
        ids = pl.from_arrow(table).explode("source_request_ids").drop_nulls()
        parts.append(ids.select(request_id="source_request_ids", set=pl.lit(name)).unique())
    if not parts:
        return pa.table({"request_id": pa.array([], pa.string()), "set": pa.array([], pa.string())})
    return pl.concat(parts).to_arrow()


@dataclass(frozen=True)
class ClusterReport:
    clusters: int
    committed: bool  # False: built from the same source versions and policy as the stored table
    source_versions: dict[str, int]


def build_failure_clusters(lake: Lake, policy: ClusterPolicy = ClusterPolicy()) -> ClusterReport:
    """Rebuild failure_clusters whole from tagged_rows and the curated sets; a build from the
    same versions and policy as the stored one commits nothing."""
    versions = source_versions(lake, SOURCES)
    fingerprint = build_fingerprint(versions, policy)
    meta = commit_meta(fingerprint, versions)
    if lake.last_commit_metadata(FAILURE_CLUSTERS.name).get(FINGERPRINT_KEY) == fingerprint:
        stats = lake.stats(FAILURE_CLUSTERS.name)
        return ClusterReport(stats.rows if stats else 0, False, versions)
    tagged = lake.read(TAGGED_ROWS.name, columns=TAGGED_COLUMNS)
    if tagged is None:
        tagged = TAGGED_ROWS.schema.empty_table().select(TAGGED_COLUMNS)
    clusters = failure_clusters(tagged, fed_sets(lake), policy)
    lake.overwrite(FAILURE_CLUSTERS, clusters, metadata=meta)
    return ClusterReport(clusters.num_rows, True, versions)


def cluster_rows(lake: Lake, cluster_id: str) -> set[str]:
    """The request ids of every tagged row in failure cluster `cluster_id` (its failing rows and
    the good rows of the same prompts), as the latest failure_clusters build grouped them.

    A curated row belongs to the cluster when one of its source_request_ids is in the set.
    UnknownCluster when the cluster is not in the table (never built, or gone since: its prompts
    regrouped or fell below the minimum size).
    """
    if not cluster_id:
        raise ValueError("cluster id must be a non-empty string")
    table = lake.read(
        FAILURE_CLUSTERS.name,
        columns=["cluster_id", "source_request_ids"],
    )
    if table is None:
        raise UnknownCluster(f"no failure_clusters table yet: cannot find cluster {cluster_id!r}")
    found = pl.from_arrow(table).filter(pl.col("cluster_id") == cluster_id)
    if not found.height:
        raise UnknownCluster(
            f"failure cluster {cluster_id!r} is not in failure_clusters (its prompts were "
            "regrouped or fell below the minimum size)"
        )
    return set(found["source_request_ids"].explode().drop_nulls().to_list())
