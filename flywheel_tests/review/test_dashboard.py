"""The dashboard on real Delta tables: its figures, the charts' data attributes, escaping, the empty
lake, the links to Dagster, and which tables it reads."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime

import pyarrow as pa
import pytest
from jinja2 import Environment, PackageLoader, select_autoescape

from flywheel_assets.catalog.curated import FEEDBACK_METRICS, REVIEW_QUEUE
from flywheel_assets.catalog.models import DRIFT_MONITOR, MODEL_REGISTRY
from flywheel_assets.catalog.raw import RAW_DRIFT_EVENTS
from flywheel_assets.lake.tables import Lake, TableSpec
from flywheel_assets.review import charts
from flywheel_assets.review.dashboard import (
    Retrain,
    drift_event_rows,
    drift_threshold,
    drift_windows,
    feedback_rates,
    queue_by_reason,
    render_dashboard,
    retrain_history,
)
from flywheel_assets.settings import open_lake

SVG = "{http://www.w3.org/2000/svg}"
DAGSTER = "http://dagster.example:3000"
TABLES = ("feedback_metrics", "review_queue", "model_registry", "drift_monitor", "drift_events")
D1, D2, D3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)


@pytest.fixture
def lake(tmp_path) -> Lake:
    return open_lake(str(tmp_path / "lake"))


def write(lake: Lake, spec: TableSpec, rows: list[dict]) -> pa.Table:
    """Store `rows` (missing columns null) as the table and return what the lake reads back."""
    lake.overwrite(spec, pa.Table.from_pylist(rows, schema=spec.schema))
    return lake.read(spec.name)


def metric_row(day: date, version: str | None, positive: float, correction, safety: float) -> dict:
    return {
        "day": day,
        "model_version": version,
        "positive_rate": positive,
        "correction_rate": correction,
        "safety_flag_rate": safety,
    }


def ts(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def gate_metrics(before: float, after: float, cases: int = 10) -> str:
    def rates(rate: float) -> dict:
        return {
            split: {"cases": cases, "pass_rate": rate}
            for split in ("holdout", "golden", "regression", "all")
        }

    return json.dumps({"before": rates(before), "after": rates(after)})


def parse(fragment: str) -> ET.Element:
    """The fragment as XML: it must be well-formed, charts included."""
    return ET.fromstring(fragment)


def chart(root: ET.Element, chart_id: str) -> ET.Element:
    found = [el for el in root.iter(f"{SVG}svg") if el.get("id") == chart_id]
    assert len(found) == 1, f"one chart {chart_id}, found {len(found)}"
    return found[0]


def plotted(svg: ET.Element) -> set[tuple[str, str, str]]:
    """(data-series, data-x, data-y) of every plotted point or bar."""
    return {
        (el.get("data-series"), el.get("data-x"), el.get("data-y"))
        for el in svg.iter()
        if el.get("data-y") is not None
    }


def as_data(series: dict[str, list[tuple[str, float]]]) -> set[tuple[str, str, str]]:
    return {(name, x, repr(round(y, 6))) for name, points in series.items() for x, y in points}


def test_feedback_rates_are_the_tables_figures_per_rate_and_version(lake):
    table = write(
        lake,
        FEEDBACK_METRICS,
        [
            metric_row(D2, "v1", 0.5, 0.25, 0.0),
            metric_row(D1, "v1", 0.4, None, 0.1),
            metric_row(D1, "v2", 1 / 3, 0.125, 0.05),
            metric_row(D3, None, 0.9, 0.0, 0.0),
        ],
    )
    assert feedback_rates(table) == {
        "positive_rate": {
            "v1": [("2026-11-01", 0.4), ("2026-11-02", 0.5)],
            "v2": [("2026-11-01", 1 / 3)],
            "(unknown)": [("2026-11-03", 0.9)],
        },
        "correction_rate": {
            "v1": [("2026-11-02", 0.25)],  # the null rate of 2026-11-01 is left out
            "v2": [("2026-11-01", 0.125)],
            "(unknown)": [("2026-11-03", 0.0)],
        },
        "safety_flag_rate": {
            "v1": [("2026-11-01", 0.1), ("2026-11-02", 0.0)],
            "v2": [("2026-11-01", 0.05)],
            "(unknown)": [("2026-11-03", 0.0)],
        },
    }


def test_feedback_charts_plot_the_tables_values(lake):
    table = write(
        lake,
        FEEDBACK_METRICS,
        [
            metric_row(D1, "v1", 0.4, 0.2, 0.1),
            metric_row(D2, "v1", 0.5, 0.25, 0.0),
            metric_row(D2, "v2", 1 / 3, 0.125, 0.05),
        ],
    )
    root = parse(render_dashboard(lake, DAGSTER))
    rows = table.to_pylist()
    expected = {
        rate: {(r["model_version"], r["day"].isoformat(), repr(round(r[rate], 6))) for r in rows}
        for rate in ("positive_rate", "correction_rate", "safety_flag_rate")
    }
    assert plotted(chart(root, "chart-positive-rate")) == expected["positive_rate"]
    assert plotted(chart(root, "chart-correction-rate")) == expected["correction_rate"]
    assert plotted(chart(root, "chart-safety-flag-rate")) == expected["safety_flag_rate"]
    assert ("v2", "2026-11-02", "0.333333") in expected["positive_rate"]
    lines = chart(root, "chart-positive-rate").iter(f"{SVG}polyline")
    assert len(list(lines)) == 2  # one line per model version


def test_queue_by_reason_counts_each_reason_and_folds_safety(lake):
    reasons = [
        "negative_without_correction",
        "negative_without_correction,conflict",
        "safety:pii+toxicity",
        "over_cap,safety:pii",
        "conflict",
        "conflict",
    ]
    rows = [{"request_id": f"r{i}", "reason": r, "ts": ts(1)} for i, r in enumerate(reasons)]
    table = write(lake, REVIEW_QUEUE, rows)
    counts = queue_by_reason(table)
    assert list(counts.items()) == [
        ("conflict", 3),
        ("negative_without_correction", 2),
        ("safety", 2),
        ("over_cap", 1),
    ]
    bars = plotted(chart(parse(render_dashboard(lake, DAGSTER)), "chart-queue-reasons"))
    assert bars == {("rows", k, repr(float(v))) for k, v in counts.items()}


def test_retrain_history_orders_by_creation_and_reads_holdout_rates(lake):
    def model(model_id: str, status: str, day: int, metrics: str) -> dict:
        return {"model_id": model_id, "status": status, "created_at": ts(day), "metrics": metrics}

    table = write(
        lake,
        MODEL_REGISTRY,
        [
            model("ft-b", "promoted", 2, gate_metrics(0.5, 0.75)),
            model("ft-a", "rejected", 1, gate_metrics(0.6, 0.4)),
            model("ft-c", "candidate", 3, gate_metrics(0.75, 0.8, cases=0)),
            model("ft-d", "retired", 4, "{}"),
        ],
    )
    assert retrain_history(table) == [
        Retrain("ft-a", "rejected", ts(1), 0.6, 0.4),
        Retrain("ft-b", "promoted", ts(2), 0.5, 0.75),
        Retrain("ft-c", "candidate", ts(3), None, None),  # no holdout cases: no rate
        Retrain("ft-d", "retired", ts(4), None, None),
    ]
    svg = chart(parse(render_dashboard(lake, DAGSTER)), "chart-retrain-history")
    assert plotted(svg) == {
        ("before", "ft-a (rejected)", "0.6"),
        ("after", "ft-a (rejected)", "0.4"),
        ("before", "ft-b (promoted)", "0.5"),
        ("after", "ft-b (promoted)", "0.75"),
    }
    groups = [g.get("data-x") for g in svg.iter(f"{SVG}g") if g.get("class") == "group"]
    assert groups == ["ft-a (rejected)", "ft-b (promoted)", "ft-c (candidate)", "ft-d (retired)"]
    missing = [el for el in svg.iter() if el.get("class") == "missing"]
    assert len(missing) == 4 and all(el.text == "n/a" for el in missing)


def test_drift_windows_show_each_windows_latest_evaluation(lake):
    def evaluation(end: date, version: str, rate: float, at: datetime, threshold: float) -> dict:
        return {
            "window_end": end,
            "model_version": version,
            "window_days": 7,
            "negative_rate": rate,
            "threshold": threshold,
            "breached": rate > threshold,
            "evaluated_at": at,
        }

    table = write(
        lake,
        DRIFT_MONITOR,
        [
            evaluation(D1, "v1", 0.1, ts(1, 1), 0.2),
            evaluation(D2, "v1", 0.15, ts(2, 1), 0.2),
            evaluation(D2, "v1", 0.35, ts(2, 5), 0.3),  # D2 again, after more feedback arrived
            evaluation(D2, "v2", 0.05, ts(2, 1), 0.2),
        ],
    )
    windows = drift_windows(table)
    assert windows == {
        "v1": [("2026-11-01", 0.1), ("2026-11-02", 0.35)],
        "v2": [("2026-11-02", 0.05)],
    }
    assert drift_threshold(table) == 0.3
    svg = chart(parse(render_dashboard(lake, DAGSTER)), "chart-drift-windows")
    assert plotted(svg) == as_data(windows)
    marks = [g for g in svg.iter(f"{SVG}g") if g.get("class") == "threshold"]
    assert [g.get("data-threshold") for g in marks] == ["0.3"]
    legend = [g for g in svg.iter(f"{SVG}g") if g.get("class") == "legend"][0]
    assert [t.text for t in legend.iter(f"{SVG}text")] == ["v1", "v2", "threshold 0.3"]


def test_drift_events_are_listed_newest_first(lake):
    def event(event_id: str, day: int, value: float) -> dict:
        return {
            "event_id": event_id,
            "ts": ts(day, 23),
            "metric": "negative_feedback_rate",
            "value": value,
            "threshold": 0.2,
            "window_hours": 168.0,
        }

    table = write(lake, RAW_DRIFT_EVENTS, [event("e-old", 1, 0.25), event("e-new", 3, 1 / 3)])
    rows = drift_event_rows(table)
    assert [(r["event_id"], r["ts"], r["value"]) for r in rows] == [
        ("e-new", "2026-11-03T23:00:00+00:00", 1 / 3),
        ("e-old", "2026-11-01T23:00:00+00:00", 0.25),
    ]
    root = parse(render_dashboard(lake, DAGSTER))
    body = [t for t in root.iter("table") if t.get("class") == "drift-events"][0].find("tbody")
    cells = [[td.text for td in tr.iter("td")] for tr in body.iter("tr")]
    metric = "negative_feedback_rate"
    assert cells == [
        ["e-new", "2026-11-03T23:00:00+00:00", metric, "0.333333", "0.2", "168.0"],
        ["e-old", "2026-11-01T23:00:00+00:00", metric, "0.25", "0.2", "168.0"],
    ]


def test_text_from_the_tables_is_escaped(lake):
    hostile = '<script>alert("x")</script>'
    write(lake, FEEDBACK_METRICS, [metric_row(D1, hostile, 0.5, 0.1, 0.0)])
    write(lake, REVIEW_QUEUE, [{"request_id": "r1", "reason": "<b>odd</b>", "ts": ts(1)}])
    write(
        lake,
        MODEL_REGISTRY,
        [{"model_id": hostile, "status": "candidate", "created_at": ts(1), "metrics": "{"}],
    )
    fragment = render_dashboard(lake, DAGSTER)
    assert "<script" not in fragment and "<b>" not in fragment
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in fragment
    root = parse(fragment)
    # Unescaped by the parser, the values read back intact.
    assert {s for s, _, _ in plotted(chart(root, "chart-positive-rate"))} == {hostile}
    assert {x for _, x, _ in plotted(chart(root, "chart-queue-reasons"))} == {"<b>odd</b>"}
    # Undecodable metrics give no rates, not an error.
    groups = [g.get("data-x") for g in root.iter(f"{SVG}g") if g.get("class") == "group"]
    assert groups == [f"{hostile} (candidate)"]


def test_an_empty_lake_renders_every_section_with_no_data(lake):
    root = parse(render_dashboard(lake, DAGSTER))
    headings = [h.text for h in root.iter("h2")]
    assert headings == ["Feedback rates", "Review queue", "Retrain history", "Drift"]
    svgs = list(root.iter(f"{SVG}svg"))
    assert len(svgs) == 6
    assert all("chart-empty" in svg.get("class").split() for svg in svgs)
    assert all(not plotted(svg) for svg in svgs)
    text = " ".join(root.itertext()).lower()
    assert text.count("no data yet") >= 6 and "no drift events yet" in text


def test_links_point_at_the_dagster_asset_pages(lake):
    for url in (DAGSTER, DAGSTER + "/"):
        root = parse(render_dashboard(lake, url))
        links = [a.get("href") for a in root.iter("a")]
        assert links == [f"{DAGSTER}/assets/{t}" for t in TABLES]


class ReadLog:
    """The lake, noting the name of every table read."""

    def __init__(self, lake: Lake):
        self.lake, self.names = lake, []

    def read(self, table: str, **kwargs):
        self.names.append(table)
        return self.lake.read(table, **kwargs)


def test_the_dashboard_reads_only_aggregate_and_redacted_tables(lake):
    write(lake, FEEDBACK_METRICS, [metric_row(D1, "v1", 0.5, 0.1, 0.0)])
    write(lake, REVIEW_QUEUE, [{"request_id": "r1", "reason": "conflict", "ts": ts(1)}])
    log = ReadLog(lake)
    render_dashboard(log, DAGSTER)
    assert sorted(log.names) == sorted(TABLES)


def test_the_template_puts_the_fragment_under_a_dashboard_heading(lake):
    templates = Environment(
        loader=PackageLoader("flywheel_assets.review", "templates"),
        autoescape=select_autoescape(["html"]),
    )
    body = render_dashboard(lake, DAGSTER)
    page = templates.get_template("dashboard.html").render(body=body, operator="op")
    assert "<h1>Dashboard</h1>" in page
    assert body in page  # inserted as markup, not escaped
    assert page.index("<h1>Dashboard</h1>") < page.index(body)


CHARTS = {
    "line": lambda: charts.line_chart(
        {"a": [("2026-11-02", 0.5), ("2026-11-01", 0.25)], "b": [("2026-11-03", 2 / 3)]},
        title="Rates & more",
        y_label="rate",
    ),
    "bar": lambda: charts.bar_chart({"x": 3, "y": 1}, title="Counts", y_label="rows"),
    "paired": lambda: charts.paired_bar_chart(
        {"m1": (0.5, 0.75)}, title="Pass rates", y_label="pass rate"
    ),
}


@pytest.mark.parametrize("kind", sorted(CHARTS))
def test_a_chart_is_an_accessible_scalable_image(kind):
    svg = ET.fromstring(CHARTS[kind]())
    assert svg.tag == f"{SVG}svg" and svg.get("role") == "img"
    assert svg.get("width") == "100%" and len(svg.get("viewBox").split()) == 4
    title = svg.find(f"{SVG}title")
    assert title is not None and title.get("id") == svg.get("aria-labelledby")
    desc = svg.find(f"{SVG}desc")
    assert desc is not None and desc.get("id") == svg.get("aria-describedby") and desc.text


def test_a_chart_carries_its_exact_figures():
    assert plotted(ET.fromstring(CHARTS["line"]())) == {
        ("a", "2026-11-01", "0.25"),
        ("a", "2026-11-02", "0.5"),
        ("b", "2026-11-03", "0.666667"),
    }
    assert plotted(ET.fromstring(CHARTS["bar"]())) == {("rows", "x", "3.0"), ("rows", "y", "1.0")}
    assert plotted(ET.fromstring(CHARTS["paired"]())) == {
        ("before", "m1", "0.5"),
        ("after", "m1", "0.75"),
    }


def test_a_line_chart_shares_one_x_axis_in_label_order():
    svg = ET.fromstring(CHARTS["line"]())
    x_of = {
        el.get("data-x"): float(el.get("cx")) for el in svg.iter(f"{SVG}circle") if el.get("data-x")
    }
    assert x_of["2026-11-01"] < x_of["2026-11-02"] < x_of["2026-11-03"]
    legend = [g for g in svg.iter(f"{SVG}g") if g.get("class") == "legend"][0]
    assert [t.text for t in legend.iter(f"{SVG}text")] == ["a", "b"]
    assert svg.find(f"{SVG}title").text == "Rates & more"
    assert "Latest: a 0.5 at 2026-11-02; b 0.667 at 2026-11-03." in svg.find(f"{SVG}desc").text


@pytest.mark.parametrize(
    "render",
    [
        lambda: charts.line_chart({}, title="t", y_label="y"),
        lambda: charts.line_chart({"a": [("d", float("nan"))]}, title="t", y_label="y"),
        lambda: charts.bar_chart({}, title="t", y_label="y"),
        lambda: charts.paired_bar_chart({}, title="t", y_label="y"),
    ],
)
def test_empty_input_renders_no_data(render):
    svg = ET.fromstring(render())
    assert "chart-empty" in svg.get("class") and not plotted(svg)
    assert "No data yet" in " ".join(svg.itertext())
