"""The textbook implementation the benchmark measures Flywheel against.

What a competent engineer writes first: read each landing file line by line with `json.loads`,
validate in Python, de-duplicate with a set, redact every text field with a loop of regexes, hash
user ids with HMAC, join feedback to interactions with dicts, label, sample, build the SFT, DPO,
KTO, eval and review sets, and write everything as JSON Lines. It does the pipeline's work in
spirit (fewer PII kinds, no checksum validators, no near-duplicate search, no versioned tables) and
is kept simple on purpose: it is the baseline, not a competitor.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from rapidfuzz.distance import Levenshtein

STREAM_IDS = {
    "interactions": "request_id",
    "feedback": "feedback_id",
    "annotations": "annotation_id",
    "drift_events": "event_id",
}
REQUIRED = {
    "interactions": ("request_id", "ts", "response", "model_version"),
    "feedback": ("feedback_id", "request_id", "ts", "kind"),
    "annotations": ("annotation_id", "request_id", "ts", "operator"),
    "drift_events": ("event_id", "ts", "metric", "value", "threshold"),
}
STRINGS = {
    "interactions": ("request_id", "response", "model_version", "prompt", "user_id", "session_id"),
    "feedback": ("feedback_id", "request_id", "kind", "correction", "comment", "user_id"),
    "annotations": ("annotation_id", "request_id", "operator", "correction", "verdict"),
    "drift_events": ("event_id", "metric"),
}
KIND_WEIGHTS = {
    "thumbs_up": 1.0,
    "copy": 0.5,
    "accept": 0.75,
    "thumbs_down": -1.0,
    "regenerate": -0.5,
    "report": -1.0,
    "edit": -0.25,
}
PII = (
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "[EMAIL]"),
    (re.compile(r"\(?\b\d{3}\)?[ .-]?\d{3}[ .-]\d{4}\b"), "[PHONE]"),
    (re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), "[SSN]"),
    (re.compile(r"\b(?:\d[ -]?){13,19}\b"), "[CARD]"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"), "[IP]"),
    (re.compile(r"\b(?:sk-[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}|ghp_[A-Za-z0-9]{36})"), "[SECRET]"),
    (re.compile(r"(?i)\b(password|passwd|token|api_key)\s*[=:]\s*\S+"), r"\1=[SECRET]"),
)


@dataclass
class TextbookReport:
    lines_read: int = 0
    valid: int = 0
    quarantined: int = 0
    duplicates: int = 0
    kept: int = 0
    rows: dict[str, int] = field(default_factory=dict)


def redact(text: str | None) -> str | None:
    if text is None:
        return None
    for rx, placeholder in PII:
        text = rx.sub(placeholder, text)
    return text


def run_textbook(landing: Path, out: Path, key: bytes, sample_percent: int = 5) -> TextbookReport:
    """Landing JSON Lines in, redacted tables and training sets out as JSON Lines."""
    out.mkdir(parents=True, exist_ok=True)
    report = TextbookReport()
    records: dict[str, dict[str, dict]] = {s: {} for s in STREAM_IDS}
    with open(out / "quarantine.jsonl", "w", encoding="utf-8") as quarantine:
        for stream, id_field in STREAM_IDS.items():
            for path in sorted((landing / stream).glob("*.jsonl*")):
                opener = gzip.open if path.suffix == ".gz" else open
                with opener(path, "rt", encoding="utf-8", errors="replace") as f:
                    for number, line in enumerate(f, 1):
                        report.lines_read += 1
                        reason = None
                        try:
                            rec = json.loads(line)
                            reason = _invalid(stream, rec)
                        except json.JSONDecodeError as exc:
                            reason = f"not_json: {exc}"
                        if reason:
                            report.quarantined += 1
                            row = {"file": str(path), "line": number, "reason": reason}
                            quarantine.write(json.dumps(row) + "\n")
                            continue
                        if rec[id_field] in records[stream]:
                            report.duplicates += 1
                            continue
                        records[stream][rec[id_field]] = rec
                        report.valid += 1

    feedback_by_request = defaultdict(list)
    for fb in records["feedback"].values():
        fb["user_id"] = _hash(key, fb.get("user_id"))
        fb["correction"] = redact(fb.get("correction"))
        fb["comment"] = redact(fb.get("comment"))
        feedback_by_request[fb["request_id"]].append(fb)
    annotations_by_request = defaultdict(list)
    for ann in records["annotations"].values():
        ann["correction"] = redact(ann.get("correction"))
        annotations_by_request[ann["request_id"]].append(ann)

    kept = []
    for rid, rec in records["interactions"].items():
        fbs, anns = feedback_by_request.get(rid, []), annotations_by_request.get(rid, [])
        logprob = rec.get("response_logprob")
        bucket = int(hmac.new(key, rid.encode(), hashlib.sha256).hexdigest()[:8], 16) % 100
        if (
            not (fbs or anns or (logprob is not None and logprob < -3.0))
            and bucket >= sample_percent
        ):
            continue
        messages = rec.get("messages") or [{"role": "user", "content": str(rec["prompt"])}]
        messages = [{"role": m["role"], "content": redact(m["content"])} for m in messages]
        prompt = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        score, correction = _score(fbs, anns)
        kept.append(
            {
                "request_id": rid,
                "user_id": _hash(key, rec.get("user_id")),
                "messages": messages,
                "prompt": prompt,
                "response": redact(rec["response"]),
                "model_version": rec["model_version"],
                "label": "positive" if score >= 0.5 else "negative" if score <= -0.5 else "unknown",
                "correction": correction,
            }
        )
    report.kept = len(kept)
    _write(out / "redacted_logs.jsonl", kept)
    _write(out / "redacted_feedback.jsonl", records["feedback"].values())
    report.rows = _curate(kept, out)
    return report


def _invalid(stream: str, rec) -> str | None:
    if not isinstance(rec, dict):
        return "not_object"
    for name in REQUIRED[stream]:
        if rec.get(name) is None:
            return f"missing_field: {name}"
    for name in STRINGS[stream]:
        if rec.get(name) is not None and not isinstance(rec[name], str):
            return f"wrong_type: {name}"
    if stream == "interactions":
        messages = rec.get("messages")
        if rec.get("prompt") is None and messages is None:
            return "missing_field: prompt"
        if messages is not None and not _chat(messages):
            return "bad_value: messages"
    try:
        if datetime.fromisoformat(str(rec["ts"])).tzinfo is None:
            return "bad_ts: no timezone"
    except ValueError:
        return "bad_ts"
    if stream == "feedback" and rec["kind"] not in KIND_WEIGHTS | {"rating": 0, "comparison": 0}:
        return "unknown_kind"
    return None


def _chat(messages) -> bool:
    if not isinstance(messages, list):
        return False
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            return False
    return any(m.get("role") == "user" for m in messages)


def _score(feedback: list[dict], annotations: list[dict]) -> tuple[float, str | None]:
    score, correction = 0.0, None
    for fb in feedback:
        if fb["kind"] == "rating" and isinstance(fb.get("score"), int):
            score += (fb["score"] - 3) * 0.5
        else:
            score += KIND_WEIGHTS.get(fb["kind"], 0.0)
        if fb.get("correction"):
            correction = fb["correction"]
    for ann in annotations:
        score += {"good": 2.0, "bad": -2.0}.get(ann.get("verdict"), 0.0)
        if ann.get("correction"):
            correction = ann["correction"]
    if correction:
        score = min(score, -0.5)
    return score, correction


def _curate(rows: list[dict], out: Path) -> dict[str, int]:
    sft, dpo, kto, evals, review, seen_prompts = [], [], [], [], [], set()
    for row in rows:
        answer = row["correction"] or (row["response"] if row["label"] == "positive" else None)
        if answer:
            sft.append({"messages": [*row["messages"], {"role": "assistant", "content": answer}]})
        if row["correction"]:
            sim = Levenshtein.normalized_similarity(row["correction"], row["response"])
            if 0.10 <= sim <= 0.95:
                dpo.append(
                    {
                        "prompt": row["prompt"],
                        "chosen": row["correction"],
                        "rejected": row["response"],
                    }
                )
        if row["label"] != "unknown":
            kto.append(
                {
                    "prompt": row["prompt"],
                    "completion": row["response"],
                    "label": row["label"] == "positive",
                }
            )
        normalized = " ".join(row["prompt"].lower().split())
        if row["label"] == "positive" and normalized not in seen_prompts:
            seen_prompts.add(normalized)
            evals.append({"kind": "golden", "input": row["prompt"], "expected": row["response"]})
        elif row["label"] == "negative" and not row["correction"]:
            review.append({"request_id": row["request_id"], "reason": "negative_no_correction"})
    sets = {"sft_set": sft, "dpo_set": dpo, "kto_set": kto, "eval_cases": evals, "review": review}
    for name, data in sets.items():
        _write(out / f"{name}.jsonl", data)
    return {name: len(data) for name, data in sets.items()}


def _hash(key: bytes, value: str | None) -> str | None:
    if value is None:
        return None
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def _write(path: Path, rows) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
