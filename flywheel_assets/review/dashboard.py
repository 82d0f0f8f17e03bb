"""The dashboard: feedback rates, the review queue by reason, retrain history and drift, as an HTML
fragment of server-rendered charts, each linked to its table's page in the Dagster UI.

It reads only aggregate or redacted tables (feedback_metrics, review_queue's reasons,
model_registry, drift_monitor, drift_events), never the raw logs, feedback or annotations.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime

import pyarrow as pa
import pyarrow.compute as pc

from ..catalog.curated import FEEDBACK_METRICS, REVIEW_QUEUE
from ..catalog.models import DRIFT_MONITOR, MODEL_REGISTRY
from ..catalog.raw import RAW_DRIFT_EVENTS
from ..lake.tables import Lake
from .charts import NO_DATA, bar_chart, line_chart, paired_bar_chart

# The rates charted per day, with the chart title of each.
RATES = {
    "positive_rate": "Positive feedback rate",
    "correction_rate": "Correction rate",
    "safety_flag_rate": "Safety flag rate",
}
UNKNOWN_VERSION = "(unknown)"
DRIFT_EVENTS_SHOWN = 20
_FEEDBACK_COLUMNS = ["day", "model_version", *RATES]
_REGISTRY_COLUMNS = ["model_id", "status", "created_at", "metrics"]
_DRIFT_COLUMNS = ["window_end", "model_version", "negative_rate", "threshold", "evaluated_at"]
_EVENT_COLUMNS = ["event_id", "ts", "metric", "value", "threshold", "window_hours"]


@dataclass(frozen=True)
class Retrain:
    """One registered model: its status and holdout pass rate before (production) and after."""

    model_id: str
    status: str
    created_at: datetime | None
    holdout_before: float | None
    holdout_after: float | None

    @property
    def label(self) -> str:
        return f"{self.model_id} ({self.status})"


def feedback_rates(table: pa.Table | None) -> dict[str, dict[str, list[tuple[str, float]]]]:
    """rate -> model_version -> [(ISO day, value)] by day, for each rate in RATES.

    Null rates are left out; a null model version is shown as "(unknown)".
    """
    out: dict[str, dict[str, list[tuple[str, float]]]] = {rate: {} for rate in RATES}
    if table is None:
        return out
    rows = table.select(_FEEDBACK_COLUMNS).sort_by([("day", "ascending")]).to_pylist()
    for row in rows:
        version = row["model_version"] if row["model_version"] is not None else UNKNOWN_VERSION
        for rate in RATES:
            if row[rate] is not None and row["day"] is not None:
                out[rate].setdefault(version, []).append((_iso(row["day"]), float(row[rate])))
    return out


def queue_by_reason(table: pa.Table | None) -> dict[str, int]:
    """Queued rows per reason, most first: a row queued for several reasons counts for each, and
    every "safety:..." reason counts as "safety"."""
    if table is None or table.num_rows == 0:
        return {}
    counts: Counter[str] = Counter()
    # Distinct reason strings are few, so each is split once, not once per row.
    for item in pc.value_counts(table["reason"].combine_chunks()).to_pylist():
        reasons = {_reason(r) for r in (item["values"] or "").split(",") if r.strip()}
        for reason in reasons:
            counts[reason] += item["counts"]
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def retrain_history(table: pa.Table | None) -> list[Retrain]:
    """Every registered model, oldest first, with its holdout pass rates from the gate's metrics.

    A rate is None when the metrics lack it or the split had no cases (a rate of nothing).
    """
    if table is None:
        return []
    rows = table.select(_REGISTRY_COLUMNS).to_pylist()
    rows.sort(key=lambda r: (r["created_at"] is None, r["created_at"] or 0, r["model_id"] or ""))
    return [
        Retrain(
            model_id=r["model_id"] or "",
            status=r["status"] or "",
            created_at=r["created_at"],
            holdout_before=_holdout(r["metrics"], "before"),
            holdout_after=_holdout(r["metrics"], "after"),
        )
        for r in rows
    ]


def drift_windows(table: pa.Table | None) -> dict[str, list[tuple[str, float]]]:
    """model_version -> [(ISO window end, negative rate)] by window end.

    The monitor appends an evaluation each time it runs, so a window evaluated more than once
    shows its latest evaluation.
    """
    if table is None:
        return {}
    latest: dict[tuple[str, str], tuple] = {}
    for r in table.select(_DRIFT_COLUMNS).to_pylist():
        if r["window_end"] is None or r["negative_rate"] is None:
            continue
        version = r["model_version"] if r["model_version"] is not None else UNKNOWN_VERSION
        key = (version, _iso(r["window_end"]))
        seen = latest.get(key)
        if seen is None or _later(r["evaluated_at"], seen[0]):
            latest[key] = (r["evaluated_at"], float(r["negative_rate"]))
    out: dict[str, list[tuple[str, float]]] = {}
    for (version, end), (_, rate) in sorted(latest.items()):
        out.setdefault(version, []).append((end, rate))
    return out


def drift_threshold(table: pa.Table | None) -> float | None:
    """The threshold of the latest evaluation, or None when there is none."""
    if table is None or table.num_rows == 0:
        return None
    rows = [
        r
        for r in table.select(["threshold", "evaluated_at"]).to_pylist()
        if r["threshold"] is not None
    ]
    if not rows:
        return None
    newest = rows[0]
    for r in rows[1:]:
        if _later(r["evaluated_at"], newest["evaluated_at"]):
            newest = r
    return float(newest["threshold"])


def drift_event_rows(table: pa.Table | None) -> list[dict]:
    """The drift events, newest first, with `ts` as ISO text."""
    if table is None:
        return []
    rows = table.select(_EVENT_COLUMNS).to_pylist()
    rows.sort(key=lambda r: (r["ts"] is not None, r["ts"] or 0, r["event_id"] or ""), reverse=True)
    for r in rows:
        r["ts"] = _iso(r["ts"]) if r["ts"] is not None else None
    return rows


def render_dashboard(lake: Lake, dagster_url: str) -> str:
    """The dashboard as an HTML fragment: one section per table, each linking to its asset page."""
    metrics = lake.read(FEEDBACK_METRICS.name, columns=_FEEDBACK_COLUMNS)
    queue = lake.read(REVIEW_QUEUE.name, columns=["reason"])
    registry = lake.read(MODEL_REGISTRY.name, columns=_REGISTRY_COLUMNS)
    monitor = lake.read(DRIFT_MONITOR.name, columns=_DRIFT_COLUMNS)
    events = lake.read(RAW_DRIFT_EVENTS.name, columns=_EVENT_COLUMNS)
    sections = [
        _feedback_section(metrics, dagster_url),
        _queue_section(queue, dagster_url),
        _retrain_section(registry, dagster_url),
        _drift_section(monitor, events, dagster_url),
    ]
    return '<div class="dashboard">' + "".join(sections) + "</div>"


def asset_url(dagster_url: str, table: str) -> str:
    """The table's asset page in the Dagster UI."""
    return f"{dagster_url.rstrip('/')}/assets/{table}"


def _feedback_section(table: pa.Table | None, dagster_url: str) -> str:
    rates = feedback_rates(table)
    charts = "".join(
        _chart_block(
            line_chart(
                rates[rate],
                title=f"{title} per day",
                y_label=rate,
                chart_id=f"chart-{rate.replace('_', '-')}",
            )
        )
        for rate, title in RATES.items()
    )
    intro = (
        "Per day, one line per model version. The positive and correction rates are shares of "
        "the interactions that got feedback; the safety flag rate is a share of those kept."
    )
    return _section(
        "feedback", "Feedback rates", intro, charts, [FEEDBACK_METRICS.name], dagster_url, table
    )


def _queue_section(table: pa.Table | None, dagster_url: str) -> str:
    counts = queue_by_reason(table)
    rows = table.num_rows if table is not None else 0
    intro = (
        f"{rows} queued {'row' if rows == 1 else 'rows'}; a row queued for several reasons "
        "counts once for each."
        if rows
        else "Rows waiting for review, by why they were queued."
    )
    chart = bar_chart(
        counts, title="Review queue by reason", y_label="rows", chart_id="chart-queue-reasons"
    )
    return _section(
        "queue", "Review queue", intro, _chart_block(chart), [REVIEW_QUEUE.name], dagster_url, table
    )


def _retrain_section(table: pa.Table | None, dagster_url: str) -> str:
    history = retrain_history(table)
    groups = {m.label: (m.holdout_before, m.holdout_after) for m in history}
    chart = paired_bar_chart(
        groups,
        title="Holdout pass rate per retrain",
        y_label="holdout pass rate",
        labels=("before", "after"),
        y_max=1.0,
        chart_id="chart-retrain-history",
    )
    intro = (
        "Each registered model, oldest first: the holdout pass rate of the production model "
        "before it (before) and its own (after), with its status."
    )
    return _section(
        "retrain",
        "Retrain history",
        intro,
        _chart_block(chart),
        [MODEL_REGISTRY.name],
        dagster_url,
        table,
    )


def _drift_section(monitor: pa.Table | None, events: pa.Table | None, dagster_url: str) -> str:
    threshold = drift_threshold(monitor)
    chart = line_chart(
        drift_windows(monitor),
        title="Negative feedback rate per window",
        y_label="negative_rate",
        threshold=threshold,
        chart_id="chart-drift-windows",
    )
    intro = "The drift monitor's rolling windows: negative feedback rate per model version."
    body = _chart_block(chart) + _events_table(drift_event_rows(events))
    tables = [DRIFT_MONITOR.name, RAW_DRIFT_EVENTS.name]
    return _section("drift", "Drift", intro, body, tables, dagster_url, monitor)


def _events_table(rows: list[dict]) -> str:
    if not rows:
        return '<p class="muted">No drift events yet.</p>'
    shown = rows[:DRIFT_EVENTS_SHOWN]
    caption = "Drift events, newest first"
    if len(rows) > len(shown):
        caption += f" (latest {len(shown)} of {len(rows)})"
    head = "".join(
        f'<th scope="col"{_wide(c)}>{_e(name)}</th>'
        for c, name in zip(
            _EVENT_COLUMNS,
            ("Event", "Time", "Metric", "Value", "Threshold", "Window (hours)"),
            strict=True,
        )
    )
    body = "".join(
        "<tr>" + "".join(f"<td{_wide(c)}>{_e(_cell(r[c]))}</td>" for c in _EVENT_COLUMNS) + "</tr>"
        for r in shown
    )
    return (
        f'<table class="drift-events"><caption>{_e(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _section(
    key: str,
    heading: str,
    intro: str,
    body: str,
    tables: list[str],
    dagster_url: str,
    table: pa.Table | None,
) -> str:
    """A section: heading, intro, body and a link to each of `tables` in the Dagster UI; a note
    says when `table` (the section's own) does not exist."""
    note = "" if table is not None else f'<p class="muted">{NO_DATA}: the table does not exist.</p>'
    anchors = " · ".join(
        f'<a href="{_e(asset_url(dagster_url, name))}">{_e(name)} in Dagster</a>' for name in tables
    )
    return (
        f'<section class="dashboard-section" id="{key}" aria-labelledby="{key}-heading">'
        f'<h2 id="{key}-heading">{_e(heading)}</h2>'
        f'<p class="muted">{_e(intro)}</p>{note}{body}'
        f'<p class="asset-links">{anchors}</p></section>'
    )


def _chart_block(chart: str) -> str:
    # A div, not a figure: a figure's default side margins would shrink the chart on a phone.
    return f'<div class="chart-figure">{chart}</div>'


def _holdout(metrics: str | None, when: str) -> float | None:
    try:
        decoded = json.loads(metrics or "{}")
    except json.JSONDecodeError:
        return None
    rates = decoded.get(when) if isinstance(decoded, dict) else None
    split = rates.get("holdout") if isinstance(rates, dict) else None
    if not isinstance(split, dict) or not split.get("cases"):
        return None
    rate = split.get("pass_rate")
    return float(rate) if isinstance(rate, int | float) else None


def _reason(reason: str) -> str:
    reason = reason.strip()
    return "safety" if reason.startswith("safety:") or reason == "safety" else reason


def _later(a: datetime | None, b: datetime | None) -> bool:
    if a is None:
        return False
    return b is None or a >= b


def _iso(value: date | datetime) -> str:
    return value.isoformat()


def _cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(value)


def _wide(column: str) -> str:
    # Columns the narrow layout hides (base.html hides .wide under 40rem), so the table fits.
    return ' class="wide"' if column in ("metric", "threshold", "window_hours") else ""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)
