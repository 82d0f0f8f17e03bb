"""A landing zone holding one user to erase (a quote in the id, a quarantined line, feedback on
someone else's request), and a count of that user's rows in any table."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from flywheel_assets.governance.hashing import keyed_hash
from flywheel_tests.support.privacy import KEY
from flywheel_tests.support.records import feedback, interaction, write_lines

USER = "erin.o'neil@example.com"  # a quote in the id: predicates must be quoted safely
TABLES = [
    "raw_logs",
    "raw_feedback",
    "annotations",
    "quarantine",
    "redacted_logs",
    "redacted_feedback",
    "redacted_annotations",
]


def landing_with_user(root: Path) -> None:
    write_lines(
        root,
        "interactions/a.jsonl",
        [
            interaction("e1", user_id=USER, prompt="reach me at erin@example.com"),
            interaction("e2", user_id=USER),
            interaction("o1", user_id="other"),
            interaction("o2", user_id="other"),
            f'{{"request_id": "e3", "user_id": "{USER}", "broken',  # quarantined, holds the id
        ],
    )
    write_lines(
        root,
        "feedback/a.jsonl",
        [
            feedback("f1", "e1", kind="thumbs_down", correction="fixed"),
            feedback("f2", "o1", user_id=USER),  # the user's feedback on someone else's answer
            feedback("f3", "o1", user_id="other"),
            feedback("f4", "o2"),
        ],
    )
    write_lines(
        root,
        "annotations/a.jsonl",
        [
            {
                "annotation_id": "a1",
                "request_id": "e2",
                "ts": "2026-11-20T10:00:00Z",
                "operator": "op",
            }
        ],
    )


def user_rows(table) -> int:
    # Parquet files written by the Delta writer may use string_view; compare as plain strings.
    table = table.cast(
        pa.schema(
            [
                f.with_type(pa.string()) if pa.types.is_string_view(f.type) else f
                for f in table.schema
            ]
        )
    )
    names = table.column_names
    hits = 0
    user_hash = keyed_hash(USER, KEY, "user")
    for name, value in [("user_id", USER), ("user_hash", user_hash)]:
        if name in names:
            hits += pc.sum(pc.fill_null(pc.equal(table[name], value), False)).as_py() or 0
    if "request_id" in names:
        erased = pa.array(["e1", "e2", "e3"])
        hits += pc.sum(pc.is_in(table["request_id"], value_set=erased)).as_py() or 0
    if "raw_line" in names:
        hits += pc.sum(pc.match_substring(table["raw_line"], USER)).as_py() or 0
    return hits
