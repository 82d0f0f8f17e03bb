"""Failure clusters: built from constructed tagged rows, on real Delta tables and through
dg.materialize."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pyarrow as pa
import pytest

from flywheel_assets.catalog.curated import FAILURE_CLUSTERS, SFT_SET, TAGGED_ROWS
from flywheel_assets.curation.assets import failure_clusters as failure_clusters_asset
from flywheel_assets.curation.failures import (
    ClusterPolicy,
    UnknownCluster,
    build_failure_clusters,
    cluster_id,
    cluster_rows,
    failure_clusters,
    size_bucket,
)
from flywheel_assets.resources import LakeResource

T0 = datetime(2026, 11, 20, tzinfo=UTC)
RETURN = "how do i return the aurora x2 headphones"
WIFI = "my nimbus smart thermostat won t connect to wifi"


def row(
    request_id, normalized, *, label="unknown", correction=None, edit=None, hours=0, prompt=None
):
    return {
        "request_id": request_id,
        "ts": T0 + timedelta(hours=hours),
        "prompt": prompt if prompt is not None else f"redacted: {normalized}",
        "normalized_prompt": normalized,
        "label": label,
        "correction": correction,
        "edited_response": edit,
    }


def tagged(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=TAGGED_ROWS.schema)


def sample_rows() -> list[dict]:
    rows = []
    # Order numbers differ per row: masked, they are one prompt.
    for i in range(6):
        rows.append(row(f"ret-neg-{i}", f"where is my order {1000 + i}", label="negative", hours=i))
    rows.append(row("ret-cor", "where is my order 2000 pls", correction="It ships today.", hours=7))
    for i in range(3):
        rows.append(row(f"ret-pos-{i}", f"where is my order {3000 + i}", label="positive", hours=i))
    # A second, smaller failure cluster.
    for i in range(2):
        rows.append(row(f"wifi-neg-{i}", WIFI, label="negative", hours=i))
    rows.append(row("wifi-edit", WIFI + " at all", edit="Try a restart.", hours=3))
    # Only good answers: no failure cluster.
    for i in range(5):
        rows.append(row(f"ok-{i}", RETURN, label="positive"))
    return rows


def by_representative(table: pa.Table) -> dict[str, dict]:
    return {r["representative"]: r for r in table.to_pylist()}


def test_near_duplicate_failing_prompts_form_one_cluster_with_its_counts():
    out = failure_clusters(tagged(sample_rows()), policy=ClusterPolicy(min_size=1))
    assert out.schema == FAILURE_CLUSTERS.schema
    clusters = by_representative(out)
    assert set(clusters) == {"where is my order 0", WIFI}
    orders = clusters["where is my order 0"]
    assert orders["size"] == 7  # 6 negative + 1 corrected
    assert orders["rows"] == 10  # and 3 positive rows of the same prompt
    assert orders["corrected"] == 1
    assert orders["negative_rate"] == pytest.approx(0.7)
    assert orders["first_seen"] == T0 and orders["last_seen"] == T0 + timedelta(hours=7)
    assert orders["cluster_id"] == cluster_id("where is my order 0")
    assert sorted(orders["source_request_ids"]) == sorted(
        [f"ret-neg-{i}" for i in range(6)] + ["ret-cor"] + [f"ret-pos-{i}" for i in range(3)]
    )
    wifi = clusters[WIFI]
    assert (wifi["size"], wifi["rows"], wifi["corrected"]) == (3, 3, 1)
    # Largest first.
    assert out["representative"].to_pylist() == ["where is my order 0", WIFI]


def test_examples_are_up_to_three_redacted_prompts_passed_through():
    rows = [
        row(
            f"r{i}",
            f"where is my order {i}",
            label="negative",
            hours=i,
            prompt=f"order #{i} [EMAIL]",
        )
        for i in range(5)
    ]
    (cluster,) = failure_clusters(tagged(rows), policy=ClusterPolicy(min_size=1)).to_pylist()
    # The latest failing prompts, as tagged_rows holds them (already redacted).
    assert cluster["examples"] == ["order #4 [EMAIL]", "order #3 [EMAIL]", "order #2 [EMAIL]"]


def test_no_cluster_below_the_minimum_size():
    out = failure_clusters(tagged(sample_rows()), policy=ClusterPolicy(min_size=4))
    assert out["representative"].to_pylist() == ["where is my order 0"]
    assert failure_clusters(tagged(sample_rows()), policy=ClusterPolicy(min_size=8)).num_rows == 0


def test_only_good_answers_make_no_cluster():
    rows = [row(f"ok-{i}", RETURN, label="positive") for i in range(10)]
    assert failure_clusters(tagged(rows), policy=ClusterPolicy(min_size=1)).num_rows == 0


def test_ids_are_stable_across_rebuilds_and_input_order():
    rows = sample_rows()
    first = failure_clusters(tagged(rows), policy=ClusterPolicy(min_size=1))
    again = failure_clusters(tagged(rows[::-1]), policy=ClusterPolicy(min_size=1))
    # Rows in reverse order give the same table, member lists included.
    assert first.to_pylist() == again.to_pylist()
    # A new failing variant joins the cluster without renaming it.
    grown = rows + [row("ret-new", "where is my order 77 pls", label="negative")]
    ids = by_representative(failure_clusters(tagged(grown), policy=ClusterPolicy(min_size=1)))
    assert ids["where is my order 0"]["cluster_id"] == cluster_id("where is my order 0")
    assert ids["where is my order 0"]["size"] == 8


def test_the_sets_a_cluster_feeds_come_from_the_curated_provenance():
    feeds = pa.table(
        {
            "request_id": ["ret-cor", "ret-pos-0", "wifi-edit"],
            "set": ["dpo_set", "sft_set", "sft_set"],
        }
    )
    clusters = by_representative(
        failure_clusters(tagged(sample_rows()), feeds, ClusterPolicy(min_size=1))
    )
    assert clusters["where is my order 0"]["sets"] == ["dpo_set", "sft_set"]
    assert clusters[WIFI]["sets"] == ["sft_set"]


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"min_size": 0}, "min_size must be at least 1"),
        ({"similarity": 0}, "similarity must be in"),
        ({"similarity": 1.5}, "similarity must be in"),
    ],
)
def test_a_bad_policy_is_refused_by_name(policy, message):
    with pytest.raises(ValueError, match=message):
        ClusterPolicy(**policy)


def test_tagged_rows_without_the_needed_columns_are_refused():
    with pytest.raises(ValueError, match="lack the columns"):
        failure_clusters(pa.table({"request_id": ["a"]}))


@pytest.mark.parametrize(
    ("size", "bucket"), [(24, None), (25, 25), (49, 25), (50, 50), (99, 50), (100, 100), (400, 400)]
)
def test_size_buckets_double_from_the_threshold(size, bucket):
    assert size_bucket(size, 25) == bucket


def write_tagged(lake, rows):
    lake.overwrite(TAGGED_ROWS, tagged(rows))


def test_the_build_commits_once_per_source_version_and_cluster_rows_reads_it(lake):
    write_tagged(lake, sample_rows())
    sft = [
        {"example_id": "e1", "ts": T0, "source_request_ids": ["ret-cor"]},
        {"example_id": "e2", "ts": T0, "source_request_ids": ["ok-1"]},
    ]
    lake.overwrite(SFT_SET, pa.Table.from_pylist(sft, schema=SFT_SET.schema))
    first = build_failure_clusters(lake, ClusterPolicy(min_size=3))
    assert (first.clusters, first.committed) == (2, True)
    version = lake.stats(FAILURE_CLUSTERS.name).version
    assert build_failure_clusters(lake, ClusterPolicy(min_size=3)).committed is False
    assert lake.stats(FAILURE_CLUSTERS.name).version == version
    stored = by_representative(lake.read(FAILURE_CLUSTERS.name))
    assert stored["where is my order 0"]["sets"] == ["sft_set"]
    members = cluster_rows(lake, cluster_id("where is my order 0"))
    assert "ret-cor" in members and "ret-pos-2" in members and "wifi-edit" not in members
    with pytest.raises(UnknownCluster, match="'nope' is not in failure_clusters"):
        cluster_rows(lake, "nope")


def test_cluster_rows_before_any_build_says_so(lake):
    with pytest.raises(UnknownCluster, match="no failure_clusters table yet"):
        cluster_rows(lake, "abc")


def test_the_asset_materializes_with_its_config(lake):
    write_tagged(lake, sample_rows())
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [failure_clusters_asset],
            resources={"lake": LakeResource(root=lake.root)},
            run_config={"ops": {"failure_clusters": {"config": {"min_size": 4}}}},
            instance=instance,
        )
    assert result.success
    (mat,) = result.asset_materializations_for_node("failure_clusters")
    assert mat.metadata["dagster/row_count"].value == 1
    assert mat.metadata["largest"].value == {cluster_id("where is my order 0"): 7}
    stored = lake.read(FAILURE_CLUSTERS.name)
    assert stored["size"].to_pylist() == [7]
    # The asset sits in the curation group, downstream of tagged_rows and the curated sets.
    key = dg.AssetKey("failure_clusters")
    assert failure_clusters_asset.group_names_by_key[key] == "curation"
    upstream = {k.to_user_string() for k in failure_clusters_asset.asset_deps[key]}
    assert upstream >= {"tagged_rows", "sft_set", "dpo_set", "review_queue"}
