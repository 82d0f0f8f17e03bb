"""Curation: tags, eval cases, the review queue, the SFT, DPO and KTO sets, feedback metrics."""
