"""Feedback metrics per day and model version, and a text chart of them for the Dagster UI."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from ..catalog.curated import FEEDBACK_METRICS
from .signals import NEGATIVE, POSITIVE

RATES = ("feedback_rate", "positive_rate", "negative_rate", "correction_rate", "safety_flag_rate")


@dataclass(frozen=True)
class MetricThresholds:
    min_positive_rate: float = 0.70
    max_correction_rate: float = 0.20
    max_safety_flag_rate: float = 0.005


# What daily_metrics reads of tagged_rows: the text columns are most of the table and not needed.
TAGGED_COLUMNS = ["ts", "model_version", "feedback_kinds", "safety_flags", "label", "correction"]


def daily_metrics(interactions: pa.Table, tagged: pa.Table) -> pa.Table:
    """Rates per (day, model_version).

    `interactions` has `ts` and `model_version` for every logged interaction (the denominator the
    sampling budget would otherwise bias); `tagged` has the kept rows with labels and tags.
    Feedback rates are over interactions with feedback; the safety rate is over kept interactions.
    """
    totals = _renamed(
        _by_day(interactions)
        .group_by(["day", "model_version"])
        .aggregate([("model_version", "count")]),
        {"model_version_count": "interactions"},
    )
    has_feedback = pc.greater(pc.list_value_length(tagged["feedback_kinds"]), 0)
    flags = tagged["safety_flags"]
    parts = _by_day(tagged).append_column("with_feedback", has_feedback.cast(pa.int64()))
    parts = parts.append_column("kept", pa.repeat(1, tagged.num_rows).cast(pa.int64()))
    for name, cond in [
        ("positive", pc.and_(has_feedback, pc.equal(tagged["label"], POSITIVE))),
        ("negative", pc.and_(has_feedback, pc.equal(tagged["label"], NEGATIVE))),
        ("corrected", pc.and_(has_feedback, pc.is_valid(tagged["correction"]))),
        ("safety_flagged", pc.greater(pc.list_value_length(flags), 0)),
    ]:
        parts = parts.append_column(name, pc.fill_null(cond, False).cast(pa.int64()))
    counts = ["kept", "with_feedback", "positive", "negative", "corrected", "safety_flagged"]
    sums = _renamed(
        parts.group_by(["day", "model_version"]).aggregate([(c, "sum") for c in counts]),
        {f"{c}_sum": c for c in counts},
    )
    joined = totals.join(sums, ["day", "model_version"], join_type="left outer")
    for c in counts:
        joined = joined.set_column(
            joined.schema.get_field_index(c), c, pc.fill_null(joined[c], 0).cast(pa.int64())
        )
    fb = joined["with_feedback"]
    joined = joined.append_column("feedback_rate", _rate(fb, joined["interactions"]))
    joined = joined.append_column("positive_rate", _rate(joined["positive"], fb))
    joined = joined.append_column("negative_rate", _rate(joined["negative"], fb))
    joined = joined.append_column("correction_rate", _rate(joined["corrected"], fb))
    joined = joined.append_column(
        "safety_flag_rate", _rate(joined["safety_flagged"], joined["kept"])
    )
    out = joined.select(FEEDBACK_METRICS.schema.names).cast(FEEDBACK_METRICS.schema)
    return out.sort_by([("day", "ascending"), ("model_version", "ascending")])


def overall(metrics: pa.Table) -> dict[str, float | None]:
    """The rates over every row of `metrics`, weighted by their counts."""
    s = {c: pc.sum(metrics[c]).as_py() or 0 for c in metrics.column_names if c in _COUNTS}
    return {
        "feedback_rate": _ratio(s["with_feedback"], s["interactions"]),
        "positive_rate": _ratio(s["positive"], s["with_feedback"]),
        "negative_rate": _ratio(s["negative"], s["with_feedback"]),
        "correction_rate": _ratio(s["corrected"], s["with_feedback"]),
        "safety_flag_rate": _ratio(s["safety_flagged"], s["kept"]),
    }


def breaches(rates: dict[str, float | None], t: MetricThresholds) -> dict[str, str]:
    """Which thresholds the rates cross, with a readable line each."""
    out = {}
    if rates["positive_rate"] is not None and rates["positive_rate"] < t.min_positive_rate:
        out["positive_rate"] = f"{rates['positive_rate']:.1%} < {t.min_positive_rate:.1%}"
    if rates["correction_rate"] is not None and rates["correction_rate"] > t.max_correction_rate:
        out["correction_rate"] = f"{rates['correction_rate']:.1%} > {t.max_correction_rate:.1%}"
    flagged = rates["safety_flag_rate"]
    if flagged is not None and flagged > t.max_safety_flag_rate:
        out["safety_flag_rate"] = f"{flagged:.2%} > {t.max_safety_flag_rate:.2%}"
    return out


def chart_markdown(metrics: pa.Table, width: int = 24) -> str:
    """A per-day bar chart of each rate, readable in the asset's materialization page."""
    lines = ["| day | model | interactions | " + " | ".join(RATES) + " |"]
    lines.append("|" + "---|" * (3 + len(RATES)))
    for row in metrics.to_pylist():
        cells = [
            f"`{_bar(row[r], width)}` {row[r]:.0%}" if row[r] is not None else "–" for r in RATES
        ]
        lines.append(
            f"| {row['day']} | {row['model_version']} | {row['interactions']} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


_COUNTS = {
    "interactions",
    "kept",
    "with_feedback",
    "positive",
    "negative",
    "corrected",
    "safety_flagged",
}


def _renamed(table: pa.Table, names: dict[str, str]) -> pa.Table:
    return table.rename_columns([names.get(n, n) for n in table.column_names])


def _by_day(table: pa.Table) -> pa.Table:
    day = pc.cast(table["ts"], pa.timestamp("us", tz="UTC")).cast(pa.date32())
    return pa.table({"day": day, "model_version": table["model_version"]})


def _rate(num: pa.ChunkedArray, den: pa.ChunkedArray) -> pa.Array:
    num_f, den_f = num.cast(pa.float64()), den.cast(pa.float64())
    return pc.if_else(pc.greater(den_f, 0), pc.divide(num_f, den_f), pa.scalar(None, pa.float64()))


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _bar(value: float, width: int) -> str:
    filled = round(max(0.0, min(1.0, value)) * width)
    return "█" * filled + "·" * (width - filled)
