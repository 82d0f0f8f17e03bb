"""Measurements the benchmark makes in its own process: sensor ticks and the PII detector alone."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc


def sensor_ticks(landing: Path, lake: Path, repeat: int = 5) -> dict[str, dict[str, float]]:
    """Milliseconds per tick of every sensor over the benchmark's lake: the first tick (no cursor,
    everything is new to it) and a steady tick (best of `repeat`, from the cursor it left)."""
    import dagster as dg

    from flywheel_assets.definitions import defs
    from flywheel_assets.resources import LakeResource, LandingResource
    from flywheel_assets.training.resources import TrainingResource

    resources = {
        "lake": LakeResource(root=str(lake)),
        "landing": LandingResource(root=str(landing)),
        "training": TrainingResource(),
    }
    out = {}
    with dg.instance_for_test() as instance:

        def tick(sensor, cursor):
            context = dg.build_sensor_context(
                instance=instance, definitions=defs, resources=resources, cursor=cursor
            )
            started = time.perf_counter()
            result = sensor.evaluate_tick(context)
            return (time.perf_counter() - started) * 1000, result.cursor

        for sensor in defs.sensors:
            first, cursor = tick(sensor, None)
            steady = min(tick(sensor, cursor)[0] for _ in range(repeat))
            out[sensor.name] = {"first_ms": first, "steady_ms": steady}
    return out


def detector_throughput(mb: float, repeat: int = 3) -> dict[str, float]:
    """MB/s of the vectorized detector and of the textbook regex loop on the same text."""
    from flywheel_assets.privacy.pii import Detector

    from ..redaction import best_of, make_rows
    from .textbook import redact

    arr = pa.array(make_rows(mb), pa.string())
    size = pc.sum(pc.binary_length(arr)).as_py() / 1e6
    detector = Detector()
    detector.redact_array(arr.slice(0, 1000))
    return {
        "mb": size,
        "detector_mb_s": size / best_of(lambda: detector.redact_array(arr), repeat),
        "textbook_mb_s": size / best_of(lambda: [redact(t) for t in arr.to_pylist()], repeat),
    }
