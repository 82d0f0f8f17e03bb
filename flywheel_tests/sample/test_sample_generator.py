"""Tests for the seeded sample landing-zone generator: determinism, exact manifest counts, and
realistic content (PII, feedback kinds, duplicates, malformed lines)."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

import pytest

from flywheel_assets.sample import (
    DEFAULT_START,
    FEEDBACK_KINDS,
    FEEDBACK_REASONS,
    INTERACTION_REASONS,
    STREAMS,
    SampleManifest,
    write_sample_landing,
)

ID_FIELD = {
    "interactions": "request_id",
    "feedback": "feedback_id",
    "annotations": "annotation_id",
    "drift_events": "event_id",
}
ROLES = {"system", "user", "assistant", "tool"}
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
CARD_RE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\b")


# -- a tiny validator of the landing contract -----------------------------------------------------


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _ts_ok(v: str) -> bool:
    try:
        return datetime.fromisoformat(v).tzinfo is not None
    except ValueError:
        return False


def _check_fields(
    rec: dict, required: tuple[str, ...], types: dict[str, Any], ts_field: str = "ts"
) -> str | None:
    if any(f not in rec for f in required):
        return "missing_field"
    if any(f in rec and not check(rec[f]) for f, check in types.items()):
        return "wrong_type"
    if not _ts_ok(rec[ts_field]):
        return "bad_ts"
    return None


def _interaction_reason(rec: dict) -> str | None:
    if "prompt" not in rec and "messages" not in rec:
        return "missing_field"
    types = {
        "request_id": _is_str,
        "ts": _is_str,
        "response": _is_str,
        "model_version": _is_str,
        "prompt": _is_str,
        "messages": lambda v: isinstance(v, list),
        "user_id": _is_str,
        "session_id": _is_str,
        "latency_ms": _is_int,
        "response_logprob": _is_num,
        "metadata": lambda v: isinstance(v, dict),
    }
    reason = _check_fields(rec, ("request_id", "ts", "response", "model_version"), types)
    if reason:
        return reason
    if "messages" in rec:
        msgs = rec["messages"]
        shape_ok = all(
            isinstance(m, dict) and m.get("role") in ROLES and _is_str(m.get("content"))
            for m in msgs
        )
        if not shape_ok or not any(m["role"] == "user" for m in msgs):
            return "bad_value"
    return None


def _feedback_reason(rec: dict) -> str | None:
    types = {
        "feedback_id": _is_str,
        "request_id": _is_str,
        "ts": _is_str,
        "kind": _is_str,
        "score": _is_int,
        "correction": _is_str,
        "comment": _is_str,
        "user_id": _is_str,
        "other_request_id": _is_str,
    }
    reason = _check_fields(rec, ("feedback_id", "request_id", "ts", "kind"), types)
    if reason:
        return reason
    kind = rec["kind"]
    if kind not in FEEDBACK_KINDS:
        return "unknown_kind"
    if kind == "rating" and rec.get("score") not in (1, 2, 3, 4, 5):
        return "bad_value"
    if kind == "edit" and "correction" not in rec:
        return "bad_value"
    if kind == "comparison" and "other_request_id" not in rec:
        return "bad_value"
    return None


def _annotation_reason(rec: dict) -> str | None:
    types = {
        "annotation_id": _is_str,
        "request_id": _is_str,
        "ts": _is_str,
        "operator": _is_str,
        "tags": lambda v: isinstance(v, list) and all(_is_str(t) for t in v),
        "correction": _is_str,
        "verdict": _is_str,
    }
    reason = _check_fields(rec, ("annotation_id", "request_id", "ts", "operator", "tags"), types)
    if reason:
        return reason
    if rec.get("verdict", "good") not in ("good", "bad"):
        return "bad_value"
    return None


def _drift_reason(rec: dict) -> str | None:
    types = {
        "event_id": _is_str,
        "ts": _is_str,
        "metric": _is_str,
        "value": _is_num,
        "threshold": _is_num,
        "window_hours": _is_num,
    }
    return _check_fields(rec, ("event_id", "ts", "metric", "value", "threshold"), types)


RECORD_REASON = {
    "interactions": _interaction_reason,
    "feedback": _feedback_reason,
    "annotations": _annotation_reason,
    "drift_events": _drift_reason,
}


def classify(stream: str, raw: bytes) -> tuple[str | None, Any]:
    """(reason code or None, parsed record) for one physical line."""
    if not raw.strip():
        return "empty_line", None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "not_utf8", None
    try:
        rec = json.loads(text)
    except json.JSONDecodeError:
        return "not_json", None
    if not isinstance(rec, dict):
        return "not_object", None
    return RECORD_REASON[stream](rec), rec


def read_lines(root: Path, rel: str) -> list[bytes]:
    path = root / rel
    data = gzip.decompress(path.read_bytes()) if rel.endswith(".gz") else path.read_bytes()
    assert data == b"" or data.endswith(b"\n")
    return data.splitlines(keepends=True)


class Landing:
    """Everything in a generated landing root, classified line by line."""

    def __init__(self, root: Path, manifest: SampleManifest) -> None:
        self.root = root
        self.manifest = manifest
        self.valid: dict[str, list[dict]] = defaultdict(list)
        self.reasons: dict[str, Counter[str]] = defaultdict(Counter)
        self.duplicates: dict[str, list[tuple[str, str]]] = defaultdict(list)  # (first, dup file)
        self.lines: Counter[str] = Counter()
        for stream in STREAMS:
            first: dict[str, tuple[bytes, str]] = {}
            for rel in manifest.files[stream]:
                for raw in read_lines(root, rel):
                    self.lines[stream] += 1
                    reason, rec = classify(stream, raw)
                    if reason:
                        self.reasons[stream][reason] += 1
                        continue
                    rid = rec[ID_FIELD[stream]]
                    if rid in first:
                        assert raw == first[rid][0], f"re-send of {rid} differs"
                        self.duplicates[stream].append((first[rid][1], rel))
                    else:
                        first[rid] = (raw, rel)
                        self.valid[stream].append(rec)


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Landing:
    root = tmp_path_factory.mktemp("landing")
    return Landing(root, write_sample_landing(root, n_interactions=2000))


# -- structure and counts ------------------------------------------------------------------------


def test_manifest_identity_and_classification_match(landing: Landing) -> None:
    m = landing.manifest
    for stream in STREAMS:
        assert (
            m.valid[stream] + m.duplicates[stream] + sum(m.malformed[stream].values())
            == (m.lines[stream])
        )
        assert landing.lines[stream] == m.lines[stream]
        assert len(landing.valid[stream]) == m.valid[stream]
        assert len(landing.duplicates[stream]) == m.duplicates[stream]
        assert dict(landing.reasons[stream]) == m.malformed[stream], stream
    assert m.valid["interactions"] == 2000
    assert json.loads(m.to_json())["lines"] == m.lines


def test_every_reason_code_present(landing: Landing) -> None:
    m = landing.manifest
    assert set(m.malformed["interactions"]) == set(INTERACTION_REASONS)
    assert set(m.malformed["feedback"]) == set(FEEDBACK_REASONS)
    assert m.malformed["annotations"] and m.malformed["drift_events"]
    # ~1% of lines
    for stream in ("interactions", "feedback"):
        share = sum(m.malformed[stream].values()) / m.lines[stream]
        assert 0.005 < share < 0.03, (stream, share)


def test_files_and_extensions(landing: Landing) -> None:
    for stream in STREAMS:
        files = landing.manifest.files[stream]
        assert (landing.root / stream).is_dir()
        assert sorted(p.name for p in (landing.root / stream).iterdir()) == sorted(
            f.split("/")[1] for f in files
        )
        assert len(files) == 3
        assert [f.endswith(".gz") for f in files] == [False, True, False]
        for rel in files:
            assert re.fullmatch(rf"{stream}/part-\d{{4}}\.jsonl(\.gz)?", rel)
            head = (landing.root / rel).read_bytes()[:2]
            assert (head == b"\x1f\x8b") == rel.endswith(".gz")


def test_duplicates_are_exact_resends(landing: Landing) -> None:
    for stream in ("interactions", "feedback"):
        dups = landing.duplicates[stream]
        assert len(dups) >= 2 and len(dups) / landing.manifest.valid[stream] < 0.03
        assert any(a == b for a, b in dups), "no re-send in the same file"
        assert any(a < b for a, b in dups), "no re-send in a later file"
        assert all(a <= b for a, b in dups)
    assert landing.manifest.duplicates["annotations"] == 0


def test_valid_records_are_well_formed(landing: Landing) -> None:
    end = DEFAULT_START + timedelta(days=14)
    for stream in STREAMS:
        for rec in landing.valid[stream]:
            ts = datetime.fromisoformat(rec["ts"])
            assert DEFAULT_START <= ts < end
    inter_ts = {
        r["request_id"]: datetime.fromisoformat(r["ts"]) for r in landing.valid["interactions"]
    }
    for fb in landing.valid["feedback"]:
        assert fb["request_id"] in inter_ts
        assert datetime.fromisoformat(fb["ts"]) >= inter_ts[fb["request_id"]]
    for ann in landing.valid["annotations"]:
        assert ann["request_id"] in inter_ts
        assert ann["operator"] in ("op_alice", "op_bob")
    for rec in landing.valid["interactions"]:
        if "messages" in rec:
            assert rec["messages"][-1]["role"] == "user"
        if "response_logprob" in rec:
            assert rec["response_logprob"] < 0


def test_interaction_mix(landing: Landing) -> None:
    recs = landing.valid["interactions"]
    n = len(recs)
    chats = sum("messages" in r for r in recs) / n
    assert 0.2 < chats < 0.4
    users = [r["user_id"] for r in recs if "user_id" in r]
    assert 0.15 < sum("@" in u for u in users) / len(users) < 0.45
    lps = [r["response_logprob"] for r in recs if "response_logprob" in r]
    assert 0.04 < sum(lp < -3.0 for lp in lps) / len(lps) < 0.13
    known = {
        "request_id", "ts", "prompt", "messages", "response", "model_version", "user_id",
        "session_id", "latency_ms", "response_logprob", "metadata",
    }  # fmt: skip
    extra = sum(bool(set(r) - known) for r in recs) / n
    assert 0.01 < extra < 0.06
    assert len({r["model_version"] for r in recs}) >= 2
    # The same question asked verbatim by different users.
    by_prompt: dict[str, set[str]] = defaultdict(set)
    for r in recs:
        if "prompt" in r:
            by_prompt[r["prompt"]].add(r.get("user_id", ""))
    assert sum(len(u) > 1 for u in by_prompt.values()) >= 5


def test_feedback_kinds_and_references(landing: Landing) -> None:
    fbs = landing.valid["feedback"]
    kinds = Counter(f["kind"] for f in fbs)
    assert set(kinds) == set(FEEDBACK_KINDS)
    assert kinds.most_common(1)[0][0] == "thumbs_up"
    assert kinds["thumbs_down"] > kinds["rating"] > kinds["report"]
    ids = {r["request_id"] for r in landing.valid["interactions"]}
    covered = {f["request_id"] for f in fbs}
    assert 0.3 < len(covered) / len(ids) < 0.5
    comparisons = [f for f in fbs if f["kind"] == "comparison"]
    assert all(f["other_request_id"] in ids for f in comparisons)
    assert all(f["other_request_id"] != f["request_id"] for f in comparisons)
    assert any(f["kind"] == "thumbs_down" and "correction" in f for f in fbs)
    assert any("comment" in f for f in fbs)
    with_user = sum("user_id" in f for f in fbs) / len(fbs)
    assert 0.2 < with_user < 0.9


def test_annotations_and_drift_events(landing: Landing) -> None:
    anns = landing.valid["annotations"]
    assert 0.02 < len(anns) / landing.manifest.valid["interactions"] < 0.05
    assert {a["operator"] for a in anns} == {"op_alice", "op_bob"}
    assert any("correction" in a for a in anns) and any("verdict" in a for a in anns)
    assert all(a["tags"] for a in anns)
    drift = landing.valid["drift_events"]
    assert len(drift) == 3
    assert any("window_hours" in d for d in drift) and any("window_hours" not in d for d in drift)
    assert all(d["value"] > d["threshold"] for d in drift)


def test_heavy_user_burst(landing: Landing) -> None:
    by_user: dict[str, list[datetime]] = defaultdict(list)
    for f in landing.valid["feedback"]:
        if "user_id" in f:
            by_user[f["user_id"]].append(datetime.fromisoformat(f["ts"]))
    busiest = max(by_user.values(), key=len)
    assert len(busiest) >= 20
    busiest.sort()
    # a burst: at least 20 events within an hour
    assert any(busiest[i + 19] - busiest[i] <= timedelta(hours=1) for i in range(len(busiest) - 19))


def test_prompt_injection_with_thumbs_up(landing: Landing) -> None:
    injected = {
        r["request_id"]
        for r in landing.valid["interactions"]
        if "ignore previous instructions" in r.get("prompt", "").lower()
    }
    assert injected
    ups = {f["request_id"] for f in landing.valid["feedback"] if f["kind"] == "thumbs_up"}
    assert injected <= ups


def test_edit_corrections_are_realistic_edits(landing: Landing) -> None:
    responses = {r["request_id"]: r["response"] for r in landing.valid["interactions"]}
    ratios = [
        SequenceMatcher(None, responses[f["request_id"]], f["correction"]).ratio()
        for f in landing.valid["feedback"]
        if f["kind"] == "edit"
    ]
    assert len(ratios) >= 30
    mid = sum(0.3 <= r <= 0.95 for r in ratios) / len(ratios)
    assert mid >= 0.5, ratios
    assert any(r > 0.95 for r in ratios)
    assert any(r < 0.3 for r in ratios)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _iban_ok(iban: str) -> bool:
    s = iban.replace(" ", "")
    return int("".join(str(int(c, 36)) for c in s[4:] + s[:4])) % 97 == 1


def _texts(rec: dict) -> list[str]:
    out = [rec["response"]]
    out += [rec["prompt"]] if "prompt" in rec else [m["content"] for m in rec["messages"]]
    return out


def test_pii_and_lookalikes(landing: Landing) -> None:
    prompts = [r["prompt"] for r in landing.valid["interactions"] if "prompt" in r]
    with_email = [p for p in prompts if EMAIL_RE.search(p)]
    with_card = [
        p for p in prompts if any(_luhn_ok(re.sub(r"\D", "", m)) for m in CARD_RE.findall(p))
    ]
    assert with_email and with_card
    assert set(with_email) & set(with_card), "no prompt with both an email and a card"
    assert any(_iban_ok(m) for p in prompts for m in IBAN_RE.findall(p))
    texts = [t for r in landing.valid["interactions"] for t in _texts(r)]
    texts += [f[k] for f in landing.valid["feedback"] for k in ("correction", "comment") if k in f]
    joined = "\n".join(texts)
    for needle in ("password=", "AKIA", "sk-", "card ending", "order #", "SSN"):
        assert needle in joined, needle
    assert re.search(r"://\w+:[^@\s]+@", joined), "no URL with credentials"
    assert re.search(r"\b\d{3}-\d{2}-\d{4}\b", joined), "no SSN"
    assert re.search(r"\+(?:44|49|33|61|31|91) ?\d", joined), "no international phone"
    pii_share = (len(with_email) + len(with_card)) / len(prompts)
    assert pii_share < 0.25


def test_pii_helpers_produce_valid_checksums() -> None:
    from flywheel_assets.sample import iban_check_digits, luhn_check_digit

    assert luhn_check_digit("424242424242424") == "2"
    assert iban_check_digits("GB", "WEST12345698765432") == "82"
    assert iban_check_digits("DE", "370400440532013000") == "89"


# -- determinism and edge cases ------------------------------------------------------------------


def _snapshot(root: Path, m: SampleManifest) -> dict[str, bytes]:
    return {rel: (root / rel).read_bytes() for files in m.files.values() for rel in files}


def test_deterministic(tmp_path: Path) -> None:
    a = write_sample_landing(tmp_path / "a", n_interactions=600, seed=3)
    b = write_sample_landing(tmp_path / "b", n_interactions=600, seed=3)
    c = write_sample_landing(tmp_path / "c", n_interactions=600, seed=4)
    assert a == b
    assert _snapshot(tmp_path / "a", a) == _snapshot(tmp_path / "b", b)
    assert _snapshot(tmp_path / "a", a) != _snapshot(tmp_path / "c", c)


@pytest.mark.parametrize("n", [0, 1, 20, 120])
def test_small_n(tmp_path: Path, n: int) -> None:
    m = write_sample_landing(tmp_path, n_interactions=n, files_per_stream=2, gzip_share=0.5)
    land = Landing(tmp_path, m)
    for stream in STREAMS:
        assert len(m.files[stream]) == 2
        assert (
            m.valid[stream] + m.duplicates[stream] + sum(m.malformed[stream].values())
            == (m.lines[stream])
        )
        assert dict(land.reasons[stream]) == m.malformed[stream]
        assert len(land.valid[stream]) == m.valid[stream]
    assert m.valid["interactions"] == n


def test_arguments(tmp_path: Path) -> None:
    start = datetime.fromisoformat("2027-03-10T08:30:00-05:00")
    m = write_sample_landing(
        tmp_path, n_interactions=300, start=start, days=2, files_per_stream=4, gzip_share=1.0
    )
    assert all(f.endswith(".gz") for files in m.files.values() for f in files)
    land = Landing(tmp_path, m)
    for rec in land.valid["interactions"]:
        assert start <= datetime.fromisoformat(rec["ts"]) < start + timedelta(days=2)
    # A rerun with fewer parts leaves no stale files behind.
    m2 = write_sample_landing(tmp_path, n_interactions=50, files_per_stream=1, gzip_share=0.0)
    assert sorted(p.name for p in (tmp_path / "feedback").iterdir()) == ["part-0000.jsonl"]
    assert m2.files["feedback"] == ["feedback/part-0000.jsonl"]
    with pytest.raises(ValueError):
        write_sample_landing(tmp_path, start=datetime(2026, 11, 1))
    with pytest.raises(ValueError):
        write_sample_landing(tmp_path, files_per_stream=0)
