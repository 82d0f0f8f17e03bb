"""Text normalization used to compare prompts and answers: the same question asked twice matches."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def normalize_text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Unicode NFKC, lower case, punctuation dropped, whitespace collapsed and trimmed."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    out = pc.utf8_normalize(values.cast(pa.string()), form="NFKC")
    out = pc.utf8_lower(out)
    out = pc.replace_substring_regex(out, pattern=r"[^\p{L}\p{N}\s\[\]]+", replacement=" ")
    # After the line above the only whitespace left is RE2's \s ([\t\n\f\r ]). Rewriting only
    # runs of two or more and the non-space ones, rather than every \s+ match (one per word),
    # gives the same text in half the time.
    out = pc.replace_substring_regex(out, pattern=r"[\t\n\f\r ]{2,}|[\t\n\f\r]", replacement=" ")
    return pc.utf8_trim_whitespace(out)
