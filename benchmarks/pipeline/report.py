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
    if "monitor_events" in r:
        rows.append(_row(r["monitor_events"], "next run (the monitor's drift events)"))
    rows.append(_row(r["incremental"], "incremental run (+1% landing)"))
    if "settling" in r:
        rows.append(_row(r["settling"], "next run (the new day's drift event)"))
    rows.append(_row(r["noop"], "no-op run"))
    headers = ["", "seconds", "records/s", "peak RSS MB", "start-up s"]
    print(format_table(headers, rows))
    print()
    noop = r["noop"]
    increment = r["incremental"]
    steady = max(v["steady_ms"] for v in r["sensor_ticks"].values())
    targets = [
        ("end to end, against the I/O floor", flywheel / floor["seconds"], "x", 5, 3, "<="),
        (
            "textbook / flywheel",
            textbook["seconds"] / flywheel if textbook else None,
            "x",
            4,
            10,
            ">=",
        ),
        (
            "peak RSS, GB",
            peak / 1024,
            "",
            1.5 if n <= 1_000_000 else 2,
            1 if n <= 1_000_000 else 1.5,
            "<=",
        ),
        (
            "a run after +1% landing, share of a full run",
            increment["seconds"] / flywheel,
            "%",
            0.05,
            0.02,
            "<=",
        ),
        (
            "no-op run, wall time with start-up, s",
            noop["seconds"] + noop["startup"],
            "",
            3,
            2,
            "<=",
        ),
        ("steady sensor tick, ms", steady, "", 200, 50, "<="),
    ]
    baseline = r.get("baseline")
    if baseline:
        ratio = increment["seconds"] / baseline["incremental"]["seconds"]
        label = f"+1% increment here / +1% increment at {baseline['n']:,}"
        targets.append((label, ratio, "x", 2, 1.2, "<="))
    print(format_table(["target", "measured", "must", "aim", ""], [_target(*t) for t in targets]))
    print()
    committed = ", ".join(noop.get("committed") or []) or "nothing"
    print(f"no-op run:               {noop['seconds']:.1f} s, committed {committed}")
    ticks = ", ".join(
        f"{k} {v['steady_ms']:.0f} ms (first {v['first_ms']:.0f} ms)"
        for k, v in r["sensor_ticks"].items()
    )
    print(f"sensor ticks:            {ticks}")
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


def _target(label: str, value: float | None, unit: str, must: float, aim: float, op: str) -> list:
    def shown(v: float) -> str:
        if unit == "%":
            return f"{v:.1%}"
        return f"{v:.1f}{unit}" if v < 100 else f"{v:.0f}{unit}"

    if value is None:
        return [label, "not run", f"{op} {shown(must)}", f"{op} {shown(aim)}", ""]
    better = (lambda v, t: v <= t) if op == "<=" else (lambda v, t: v >= t)
    verdict = "aim met" if better(value, aim) else "met" if better(value, must) else "NOT MET"
    return [label, shown(value), f"{op} {shown(must)}", f"{op} {shown(aim)}", verdict]
