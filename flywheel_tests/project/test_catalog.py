"""The catalog is the one list of tables: it equals the code location's Delta assets, and every
table in it has what the stages need (what one row is, a key, an explicit rollback rule)."""

from __future__ import annotations

import dagster as dg
import pytest

from flywheel_assets import catalog
from flywheel_assets.catalog import Refuse, Restore
from flywheel_assets.definitions import defs

GRAPH = defs.resolve_asset_graph()
DELTA_ASSETS = {
    k.to_user_string() for k in GRAPH.get_all_asset_keys() if "delta" in GRAPH.get(k).kinds
}


def test_the_catalog_is_exactly_the_delta_assets():
    names = [t.name for t in catalog.TABLES]
    assert len(names) == len(set(names)), "a table is declared twice"
    assert set(names) == DELTA_ASSETS


def test_the_catalog_lists_upstream_tables_first():
    position = {t.name: i for i, t in enumerate(catalog.TABLES)}
    for key in GRAPH.get_all_asset_keys():
        name = key.to_user_string()
        for parent in GRAPH.get(key).parent_keys:
            if name in position and parent.to_user_string() in position:
                assert position[parent.to_user_string()] < position[name], (parent, name)


@pytest.mark.parametrize("entry", catalog.TABLES, ids=lambda t: t.name)
def test_every_table_has_what_the_stages_need(entry):
    columns = set(entry.schema.names)
    assert entry.description.startswith("One row per"), entry.description
    assert entry.key and set(entry.key) <= columns, entry.key
    assert isinstance(entry.rollback, Restore | Refuse)
    if isinstance(entry.rollback, Restore) and entry.rollback.id_column:
        assert entry.rollback.id_column in columns
    if isinstance(entry.rollback, Refuse):
        assert entry.rollback.reason.strip()
    assert set(entry.preview) <= columns
    # Previews show redacted text only: never a raw table's.
    assert not (entry.preview and entry.stage == "ingest")
    node = GRAPH.get(dg.AssetKey(entry.name))
    assert node.group_name == entry.stage
    assert node.description == entry.description


def test_a_table_the_catalog_does_not_hold_is_named_in_the_error():
    with pytest.raises(catalog.UnknownTable, match="unknown table 'nope'.*raw_logs"):
        catalog.table("nope")


def test_every_personal_table_keeps_its_ids_and_no_change_feed():
    for entry in catalog.TABLES:
        config = entry.spec.configuration()
        if entry.personal:
            assert config["delta.enableChangeDataFeed"] == "false", entry.name
            assert set(entry.spec.safe_columns) <= set(entry.schema.names), entry.name
