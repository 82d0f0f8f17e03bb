"""Writes the sample landing zone: each stream's part files (some gzipped, with re-sent records and
malformed lines where the plan puts them) and a manifest that counts them exactly."""

from __future__ import annotations

import gzip
import json
import random
import re
from bisect import bisect
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .records import SECOND_US, RecordGenerator, json_line
from .vocabulary import (
    ANNOTATION_REASONS,
    DRIFT_METRICS,
    DRIFT_REASONS,
    FEEDBACK_KINDS,
    FEEDBACK_REASONS,
    INTERACTION_REASONS,
)

DEFAULT_START = datetime(2026, 11, 1, tzinfo=UTC)
_DUP_RATE = 0.01
_MALFORMED_RATE = 0.01
_FEEDBACK_RATE = 0.39
_FEEDBACK_LINES_PER_INTERACTION = 0.46  # incl. second events and bursts; sizes the malformed plan
_ANNOTATION_RATE = 0.03
# thumbs_up most common, then thumbs_down, rating, regenerate, copy, accept, edit, ..., report
_KIND_WEIGHTS = (34, 17, 12, 6, 10, 6, 6, 4, 2)  # in FEEDBACK_KINDS order
_KIND_CUM = tuple(sum(_KIND_WEIGHTS[: j + 1]) for j in range(len(_KIND_WEIGHTS)))
# A plausible second event after the first one on the same answer.
_NEXT_KIND = {
    "thumbs_up": ("copy", "accept", "rating"),
    "thumbs_down": ("regenerate", "report", "edit"),
    "rating": ("copy", "thumbs_up"),
    "edit": ("thumbs_down", "accept"),
    "regenerate": ("comparison", "thumbs_down"),
    "copy": ("thumbs_up", "accept"),
    "accept": ("copy", "thumbs_up"),
    "report": ("thumbs_down",),
    "comparison": ("thumbs_up", "copy"),
}
_BUF_LINES = 2048

# ---------------------------------------------------------------------------------------------
# Output plumbing.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleManifest:
    """What was written, with exact per-stream counts (valid + duplicates + malformed == lines)."""

    files: dict[str, list[str]]
    lines: dict[str, int]
    valid: dict[str, int]
    duplicates: dict[str, int]
    malformed: dict[str, dict[str, int]]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def _gz_flags(n_files: int, share: float) -> list[bool]:
    # Spread the gzipped parts evenly; round(n_files * share) of them in total.
    return [int((k + 1) * share + 0.5) > int(k * share + 0.5) for k in range(n_files)]


_PART_RE = re.compile(r"^part-\d{4,}\.jsonl(\.gz)?$")


class _StreamWriter:
    """Writes one stream's part files in order, scheduling exact re-sends and malformed lines."""

    def __init__(
        self, root: Path, stream: str, gz: list[bool], rng: random.Random, dup_rate: float
    ) -> None:
        self.stream = stream
        self.dir = root / stream
        self.dir.mkdir(parents=True, exist_ok=True)
        self.names = [f"part-{k:04d}.jsonl{'.gz' if z else ''}" for k, z in enumerate(gz)]
        # Stale parts from an earlier run with other arguments would make the manifest lie.
        keep = set(self.names)
        for p in sorted(self.dir.iterdir()):
            if p.is_file() and _PART_RE.match(p.name) and p.name not in keep:
                p.unlink()
        self.gz = gz
        self.rng = rng
        self.dup_rate = dup_rate
        self.k = -1
        self._raw: Any = None
        self._fh: Any = None
        self._buf: list[bytes] = []
        self.file_lines = 0
        self.lines = 0
        self.valid = 0
        self.duplicates = 0
        self.malformed: Counter[str] = Counter()
        self._bad: list[tuple[str, bytes]] = []
        self._due: list[tuple[int, bytes]] = []  # re-sends for the open file: (after line n, line)
        self._later: dict[int, list[bytes]] = {}  # re-sends for a later file
        self._resends = 0

    def goto(self, k: int) -> None:
        while self.k < k:
            self._close_file()
            self.k += 1
            raw = open(self.dir / self.names[self.k], "wb")  # noqa: SIM115 - closed in _close_file
            self._raw = raw
            self._fh = (
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=3, mtime=0)
                if self.gz[self.k]
                else raw
            )
            self.file_lines = 0
            for line in self._later.pop(self.k, ()):
                self._due.append((self.rng.randint(0, 300), line))

    def _emit(self, line: bytes) -> None:
        buf = self._buf
        buf.append(line)
        self.file_lines += 1
        if len(buf) >= _BUF_LINES:
            self._fh.write(b"".join(buf))
            buf.clear()

    def _emit_due(self) -> None:
        n = self.file_lines
        keep = []
        for item in self._due:
            if item[0] <= n:
                self._emit(item[1])
                self.duplicates += 1
            else:
                keep.append(item)
        self._due = keep

    def _flush_bad(self) -> None:
        keep = []
        for reason, line in self._bad:
            if reason == "empty_line" and self.file_lines == 0:
                keep.append((reason, line))  # a blank line goes between records, not first
            else:
                self._emit(line)
                self.malformed[reason] += 1
        self._bad = keep

    def write(self, line: bytes, *, resend: bool = True) -> None:
        """A valid, first-occurrence record (``line`` ends with a newline)."""
        if self._bad:
            self._flush_bad()
        self._emit(line)
        self.valid += 1
        rng = self.rng
        if resend and rng.random() < self.dup_rate:
            last = len(self.names) - 1
            # The first re-send goes to a later file and the second to the same one, so that
            # even small samples have both kinds; after that it is a coin flip.
            self._resends += 1
            later = self._resends == 1 or (self._resends > 2 and rng.random() < 0.5)
            if self.k < last and later:
                self._later.setdefault(rng.randint(self.k + 1, last), []).append(line)
            else:
                self._due.append((self.file_lines + rng.randint(0, 40), line))
        if self._due:
            self._emit_due()

    def bad(self, reason: str, line: bytes) -> None:
        """Queue a malformed line; it lands just before the next valid record."""
        self._bad.append((reason, line))

    def _close_file(self) -> None:
        if self._raw is None:
            return
        for _, line in self._due:
            self._emit(line)
            self.duplicates += 1
        self._due = []
        if self._buf:
            self._fh.write(b"".join(self._buf))
            self._buf.clear()
        if self._fh is not self._raw:
            self._fh.close()
        self._raw.close()
        self._raw = self._fh = None

    def close(self) -> None:
        self.goto(len(self.names) - 1)
        # Leftover blank lines would end a file, so they are dropped (and not counted).
        self._bad = [(r, line) for r, line in self._bad if r != "empty_line"]
        if self._bad:
            self._flush_bad()
        self._close_file()
        self.lines = self.valid + self.duplicates + sum(self.malformed.values())


def _plan_malformed(
    rng: random.Random, reasons: tuple[str, ...], count: int, slots: int, cover: bool
) -> dict[int, str]:
    """Map a slot index (an interaction index) to a malformed reason code."""
    if count <= 0 or slots <= 0:
        return {}
    codes = list(reasons) if cover else []
    codes += [rng.choice(reasons) for _ in range(max(0, count - len(codes)))]
    rng.shuffle(codes)
    # Keep the tail free so that queued lines always have a valid record after them.
    room = max(1, int(slots * 0.95))
    count = min(len(codes), room)
    return dict(zip(sorted(rng.sample(range(room), count)), codes[:count], strict=True))


def write_sample_landing(
    root: str | Path,
    *,
    n_interactions: int = 2000,
    seed: int = 7,
    start: datetime | None = None,
    days: int = 14,
    files_per_stream: int = 3,
    gzip_share: float = 0.34,
) -> SampleManifest:
    """Write a deterministic sample landing zone under ``root`` and return its manifest.

    The same arguments give byte-identical files. Existing ``part-NNNN.jsonl[.gz]`` files in the
    stream folders that this call does not write are removed so the manifest describes the folder.
    """
    if n_interactions < 0:
        raise ValueError("n_interactions must be >= 0")
    if days < 1:
        raise ValueError("days must be >= 1")
    if files_per_stream < 1:
        raise ValueError("files_per_stream must be >= 1")
    if not 0.0 <= gzip_share <= 1.0:
        raise ValueError("gzip_share must be within [0, 1]")
    start = DEFAULT_START if start is None else start
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    start = start.astimezone(UTC)

    root = Path(root)
    rng = random.Random(seed)
    n = n_interactions
    fps = files_per_stream
    gz = _gz_flags(fps, gzip_share)
    g = RecordGenerator(rng, n, start, days)
    w_int = _StreamWriter(root, "interactions", gz, rng, _DUP_RATE)
    w_fb = _StreamWriter(root, "feedback", gz, rng, _DUP_RATE)
    w_ann = _StreamWriter(root, "annotations", gz, rng, 0.0)
    w_drift = _StreamWriter(root, "drift_events", gz, rng, 0.0)

    big = n >= 500
    bad_int = _plan_malformed(rng, INTERACTION_REASONS, round(n * _MALFORMED_RATE), n, big)
    n_fb_bad = round(n * _FEEDBACK_LINES_PER_INTERACTION * _MALFORMED_RATE)
    bad_fb = _plan_malformed(rng, FEEDBACK_REASONS, n_fb_bad, n, big)
    n_ann_bad = 2 + round(n * _ANNOTATION_RATE * _MALFORMED_RATE)
    bad_ann = _plan_malformed(rng, ANNOTATION_REASONS, n_ann_bad, n, n_ann_bad >= 4)
    # Heavy users: bursts of many interactions, each with feedback, minutes apart.
    n_bursts = max(1, n // 1500) if n >= 200 else 0
    bursts = set(rng.sample(range(max(1, n - 60)), n_bursts)) if n_bursts else set()

    r = rng.random
    n_users = g.n_users
    burst_left = 0
    burst_user = burst_session = None
    burst_t = 0
    k = -1
    next_file_at = 0
    for i in range(n):
        if i == next_file_at:  # interactions are split into contiguous, equal-ish parts
            while i >= next_file_at:
                k += 1
                next_file_at = -(-(k + 1) * n // fps)
            w_int.goto(k)
            w_fb.goto(k)
            w_ann.goto(k)
        if i in bad_int:
            w_int.bad(bad_int[i], g.bad_interaction(bad_int[i]))
        if i in bursts and burst_left == 0:
            burst_left = rng.randint(25, 60)
            burst_user = rng.choice(g.heavy)
            burst_session = g.new_id("sess_")
            burst_t = g.rand_time()
        in_burst = burst_left > 0
        if in_burst:
            burst_left -= 1
            burst_t += rng.randint(5, 40) * SECOND_US
            off, user, session = burst_t, burst_user, burst_session
        else:
            off = g.rand_time()
            u = int(n_users * r() ** 1.6)  # skewed: some users are regulars
            if r() < 0.05:
                user = session = None
            else:
                user = g.user_id(u)
                session = g.sessions.get(u)
                if session is None or r() < 0.4:
                    session = g.sessions[u] = g.new_id("sess_")
        rec, sentences, topic, injection = g.interaction(off, user, session)
        rid = rec["request_id"]
        w_int.write(json_line(rec))

        # Feedback: ~40% of interactions, a consistent second event now and then.
        if injection:
            events = ["thumbs_up"]
        elif in_burst:
            events = [("thumbs_up", "thumbs_down", "thumbs_down", "rating")[int(r() * 4)]]
        elif r() < _FEEDBACK_RATE:
            first = FEEDBACK_KINDS[bisect(_KIND_CUM, r() * _KIND_CUM[-1])]
            events = [first]
            if r() < 0.12:
                nxt = _NEXT_KIND[first]
                events.append(nxt[int(r() * len(nxt))])
        else:
            events = ()
        t = off
        for kind in events:
            other = None
            if kind == "comparison":
                if g.recent:  # the user preferred this answer over an earlier one
                    other = g.recent[int(r() * len(g.recent))]
                else:
                    kind = "thumbs_up"
            t += g.delays_us[int(r() * 4096)]
            fb_user = user if in_burst or injection or r() < 0.5 else None
            w_fb.write(json_line(g.feedback(kind, rid, t, fb_user, sentences, topic, other)))
        g.recent.append(rid)
        if i in bad_fb:
            w_fb.bad(bad_fb[i], g.bad_feedback(bad_fb[i], rid))

        # Operators review a small sample, and most of what the injection filter flags.
        if r() < (0.5 if injection else _ANNOTATION_RATE):
            ann = g.annotation(rid, off, sentences, topic, injection)
            w_ann.write(json_line(ann), resend=False)
        if i in bad_ann:
            reason = bad_ann[i]
            bad = g.annotation(rid, off, sentences, topic)
            w_ann.bad(reason, g.corrupt(reason, bad, "annotations"))

    # Drift events from an external detector, spread over the window.
    n_events = 3
    drift_bad = {0: rng.choice(DRIFT_REASONS), 2: rng.choice(DRIFT_REASONS)}
    for j in range(n_events):
        w_drift.goto(j * fps // n_events)
        metric, threshold = DRIFT_METRICS[j % 2] if j < 2 else rng.choice(DRIFT_METRICS)
        off = int((j + 0.5 + rng.random() * 0.4) / n_events * g.total_us)
        ev: dict[str, Any] = {
            "event_id": g.new_id("drift_"),
            "ts": g.ts(off),
            "metric": metric,
            "value": round(threshold * (1.1 + rng.random() * 0.8), 4),
            "threshold": threshold,
        }
        if j == 0 or (j > 1 and rng.random() < 0.7):  # some detectors do not report it
            ev["window_hours"] = rng.choice((1, 6, 24, 168))
        if j in drift_bad:
            bad = dict(ev, event_id=g.new_id("drift_"))
            w_drift.bad(drift_bad[j], g.corrupt(drift_bad[j], bad, "drift_events"))
        w_drift.write(json_line(ev), resend=False)

    writers = (w_int, w_fb, w_ann, w_drift)
    for w in writers:
        w.close()
    return SampleManifest(
        files={w.stream: [f"{w.stream}/{name}" for name in w.names] for w in writers},
        lines={w.stream: w.lines for w in writers},
        valid={w.stream: w.valid for w in writers},
        duplicates={w.stream: w.duplicates for w in writers},
        malformed={w.stream: dict(sorted(w.malformed.items())) for w in writers},
    )
