"""Print the benchmark's figures and the ratios the targets are stated in."""

from __future__ import annotations

from flywheel_assets.cli.output import format_table


def print_report(r: dict) -> None:
    n, stages, floor, textbook = r["n"], r["stages"], r["floor"], r["textbook"]
    flywheel = sum(s["seconds"] for s in stages)
    startup = sum(s["startup"] for s in stages)
    peak = max(s["peak_rss_mb"] for s in stages)
    print()
    print(
        f"{n:,} interactions: {r['landing_records']:,} landing records, "
        f"{r['landing_bytes'] / 1e6:.0f} MB, {r['cpu_count']} CPU(s)"
    )
    rows = [_row(s) for s in stages]
    rows.append(
        [
            "flywheel, all stages",
            f"{flywheel:.1f}",
            _rate(r["landing_records"], flywheel),
            f"{peak:.0f}",
            f"{startup:.1f}",
        ]
    )
    rows.append(_row(floor, "I/O floor (Arrow JSON -> Parquet)"))
    if textbook:
        rows.append(_row(textbook, "textbook (json.loads, regex loop, dicts)"))
    rows.append(_row(r["incremental"], "incremental run (+1% landing)"))
    rows.append(_row(r["noop"], "no-op run"))
    headers = ["", "seconds", "records/s", "peak RSS MB", "start-up s"]
    print(format_table(headers, rows))
    print()
    print(f"flywheel / I/O floor:    {flywheel / floor['seconds']:.1f}x  (target: at most 3x)")
    if textbook:
        print(
            f"textbook / flywheel:     {textbook['seconds'] / flywheel:.1f}x  "
            "(target: at least 10x)"
        )
    print(
        f"incremental / full run:  {r['incremental']['seconds'] / flywheel:.1%}  "
        "(target: at most 5%, plus start-up)"
    )
    noop = r["noop"]
    committed = ", ".join(noop.get("committed") or []) or "nothing"
    print(f"no-op run:               {noop['seconds']:.1f} s, committed {committed}")
    print(f"peak RSS:                {peak:.0f} MB  (target: at most 2048 MB)")
    ticks = ", ".join(
        f"{k} {v['steady_ms']:.0f} ms (first {v['first_ms']:.0f} ms)"
        for k, v in r["sensor_ticks"].items()
    )
    print(f"sensor ticks:            {ticks}  (target: at most 200 ms)")
    d = r["detector"]
    print(
        f"PII detector alone:      {d['detector_mb_s']:.1f} MB/s vs textbook regex loop "
        f"{d['textbook_mb_s']:.1f} MB/s on {d['mb']:.0f} MB "
        f"({d['detector_mb_s'] / d['textbook_mb_s']:.1f}x)"
    )


def _row(m: dict, label: str | None = None) -> list:
    return [
        label or m["name"],
        f"{m['seconds']:.1f}",
        _rate(m["rows"], m["seconds"]),
        f"{m['peak_rss_mb']:.0f}",
        f"{m['startup']:.1f}",
    ]


def _rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f}" if seconds and rows else "-"
