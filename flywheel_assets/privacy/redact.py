"""Redact every string a record carries, whatever its column, and count what was found per row.

Which columns are redacted follows from the schema, so a new column cannot slip through:

- identifiers (names ending in `_id` or `_version`) are join and group keys: one that contains
  PII becomes a keyed pseudonym (`pid_` + HMAC), the same in every table, so joins still hold;
- keyed hashes (`_hash`) were computed by the pipeline and are kept;
- JSON columns (`metadata`, `extra`) are parsed and every key and string value redacted, so an
  escape sequence can neither hide PII nor be broken by a placeholder;
- every other string, list of strings or struct of strings (chat messages) is redacted as text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..catalog.redacted import PII_COUNTS_TYPE
from ..contract.records import STREAMS
from ..governance.hashing import keyed_hash
from .pii import Detector

# Columns holding JSON text: the contract's object fields, unknown fields, curated provenance.
JSON_COLUMNS = frozenset(
    {f.name for s in STREAMS for f in s.fields if f.kind == "object"} | {"extra", "source_versions"}
)
IDENTIFIER_SUFFIXES = ("_id", "_version")
HASH_SUFFIX = "_hash"
PSEUDONYM_PREFIX = "pid_"
# Columns the redaction itself adds.
_COUNT_COLUMNS = ("pii_counts", "pii_total")

Counts = dict[str, np.ndarray]  # kind -> findings per row


def is_identifier(name: str) -> bool:
    return name.endswith(IDENTIFIER_SUFFIXES)


def string_columns(schema: pa.Schema) -> list[str]:
    """Every column that holds a string anywhere in its type (lists, structs and maps too)."""
    return [f.name for f in schema if _has_strings(f.type)]


def redact_table(
    table: pa.Table, detector: Detector, key: bytes, columns: Sequence[str] | None = None
) -> pa.Table:
    """Redact or pseudonymize every string column (of `columns`, default all) and add
    `pii_counts` (kind -> hits) and `pii_total`."""
    wanted = set(table.column_names if columns is None else columns) - set(_COUNT_COLUMNS)
    totals = {k: np.zeros(table.num_rows, np.int64) for k in detector.kinds}
    names = [
        name
        for name in table.column_names
        if name in wanted
        and _has_strings(table.schema.field(name).type)
        and not name.endswith(HASH_SUFFIX)  # a keyed hash the pipeline computed
    ]
    for name in _clean_small_columns(table, [n for n in names if n not in JSON_COLUMNS], detector):
        names.remove(name)  # nothing fires in it: left as it is, with zero counts
    for name in names:
        if is_identifier(name):
            column, counts = _map_strings(table[name], lambda a: _pseudonyms(a, detector, key))
        elif name in JSON_COLUMNS:
            column, counts = redact_json(table[name], detector)
            counts = {k: counts[k].to_numpy() for k in counts.column_names}
        else:
            column, counts = _map_strings(table[name], lambda a: _redact_text(a, detector))
        table = table.set_column(table.schema.get_field_index(name), name, column)
        for k, v in counts.items():
            totals[k] += v
    counts, total = _as_map(totals, table.num_rows)
    return table.append_column(pa.field("pii_counts", PII_COUNTS_TYPE), counts).append_column(
        pa.field("pii_total", pa.int64()), total
    )


def pseudonymize(
    values: pa.Array | pa.ChunkedArray, detector: Detector, key: bytes
) -> tuple[pa.Array, pa.Array]:
    """Identifiers with every one that contains PII replaced by its keyed pseudonym, and the
    findings per row. Clean ids and pseudonyms stay as they are."""
    out, counts = _map_strings(values, lambda a: _pseudonyms(a, detector, key))
    total = np.zeros(len(out), np.int64)
    for v in counts.values():
        total += v
    return out, pa.array(total)


def pseudonym(value: str, key: bytes) -> str:
    """The stored form of an identifier that contains PII (keyed with the user-hash key)."""
    return PSEUDONYM_PREFIX + keyed_hash(value, key, "id")[:32]


def redact_json(
    column: pa.Array | pa.ChunkedArray, detector: Detector
) -> tuple[pa.Array, pa.Table]:
    """Redact JSON text key by key and value by value; rows stay valid JSON.

    A value is also redacted in its key's context (`"password": "..."`), as a secret rule needs.
    Only rows where the detector fires on the text, or with escapes that could hide a finding,
    are parsed: without escapes every key and value appears verbatim between quotes.
    """
    arr = _strings(column)
    n = len(arr)
    totals = {k: np.zeros(n, np.int64) for k in detector.kinds}
    rows = _json_candidates(arr, detector)
    if len(rows) == 0:
        return arr, _counts_table(totals, detector)
    texts = arr.take(pa.array(rows)).to_pylist()
    parsed: list[object] = []
    plain: list[int] = []  # not JSON at all: redacted as text
    for i, text in enumerate(texts):
        try:
            parsed.append(json.loads(text))
        except json.JSONDecodeError:
            parsed.append(None)
            plain.append(i)
    leaves = _LeafRedactor(detector, parsed)
    out = list(texts)
    for i, obj in enumerate(parsed):
        if i in plain:
            continue
        found = np.zeros(len(detector.kinds), np.int64)
        out[i] = json.dumps(leaves.rebuild(obj, found), ensure_ascii=False, sort_keys=True)
        for j, k in enumerate(detector.kinds):
            totals[k][rows[i]] += found[j]
    # A finding that spans the JSON structure itself (or text that is not JSON) is redacted as
    # text, and the result is stored as a JSON string so the row still parses.
    left = [i for i, hit in enumerate(_fires(out, detector)) if hit]
    if left:
        result = detector.redact_array(pa.array([out[i] for i in left], pa.string()))
        for j, i in enumerate(left):
            text = result.text[j].as_py()
            out[i] = text if i in plain else json.dumps(text, ensure_ascii=False)
            for k in detector.kinds:
                totals[k][rows[i]] += result.counts[k][j].as_py()
    values = arr.to_pylist()
    for i, row in enumerate(rows):
        values[row] = out[i]
    return pa.array(values, pa.string()), _counts_table(totals, detector)


def residual_pii(table: pa.Table, detector: Detector) -> dict[str, int]:
    """Rows per column in which a detector still fires, over every string in every column of the
    table (after redaction this must be empty). JSON columns are also checked value by value."""
    out = {}
    plain = []
    for name in string_columns(table.schema):
        column = table[name]
        if name in JSON_COLUMNS and _is_string(column.type):
            hits = _json_rows_with_pii(_strings(column), detector)
            if hits.any():
                out[name] = int(hits.sum())
        else:
            plain.append((name, *_leaves(column)))
    fired_parts = _fired(detector, [flat for _, flat, _ in plain])
    for (name, _, parents), fired in zip(plain, fired_parts, strict=True):
        hits = np.zeros(table.num_rows, bool)
        hits[parents[fired]] = True
        if hits.any():
            out[name] = int(hits.sum())
    return dict(sorted(out.items(), key=lambda kv: table.column_names.index(kv[0])))


# The detector compiles its rules on every call, so short columns are checked in one call.
_BATCH_BYTES = 32 << 20
# Columns under this size are checked together first and redacted only if something fires.
_SMALL_COLUMN_BYTES = 4 << 20


def _fired(detector: Detector, parts: Sequence[pa.Array]) -> list[np.ndarray]:
    """For each array of strings, where the detector fires: one call per batch of arrays."""
    out: list[np.ndarray] = [np.zeros(0, bool)] * len(parts)
    batch: list[int] = []
    size = 0

    def flush() -> None:
        if not batch:
            return
        joined = pa.concat_arrays([parts[i] for i in batch])
        fired = pc.fill_null(detector.contains_pii(joined), False).to_numpy(zero_copy_only=False)
        start = 0
        for i in batch:
            out[i] = fired[start : start + len(parts[i])]
            start += len(parts[i])
        batch.clear()

    for i, part in enumerate(parts):
        if len(part) == 0:
            continue
        batch.append(i)
        size += part.nbytes
        if size >= _BATCH_BYTES:
            flush()
            size = 0
    flush()
    return out


def _clean_small_columns(table: pa.Table, names: list[str], detector: Detector) -> list[str]:
    """The short columns of `names` (ids, versions, operators, tags) in which nothing fires,
    found in one detector call rather than one per column."""
    small = []
    for name in names:
        flat, _ = _leaves(table[name])
        if flat.nbytes < _SMALL_COLUMN_BYTES:
            small.append((name, flat))
    fired = _fired(detector, [flat for _, flat in small])
    return [name for (name, _), f in zip(small, fired, strict=True) if not f.any()]


# --- strings inside any Arrow type -------------------------------------------------------------


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _has_strings(t: pa.DataType) -> bool:
    if _is_string(t):
        return True
    if pa.types.is_map(t):
        return _has_strings(t.key_type) or _has_strings(t.item_type)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return _has_strings(t.value_type)
    if pa.types.is_struct(t):
        return any(_has_strings(t.field(i).type) for i in range(t.num_fields))
    return False


def _strings(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return arr.cast(pa.string()) if not pa.types.is_string(arr.type) else arr


def _list_values(arr: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """A list array's values that its rows cover, the rows' offsets into them, and lengths."""
    offsets = arr.offsets.to_numpy()
    start = int(offsets[0])
    values = arr.values.slice(start, int(offsets[-1]) - start)
    return values, offsets - start, np.diff(offsets)


def _map_strings(
    column: pa.Array | pa.ChunkedArray, fn: Callable[[pa.Array], tuple[pa.Array, Counts]]
) -> tuple[pa.Array, Counts]:
    """Apply `fn` to every string inside `column`, rebuilding lists and structs around the result;
    the counts `fn` returns are summed into the row each string belongs to."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    t = arr.type
    if _is_string(t):
        return fn(_strings(arr))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        values, offsets, lengths = _list_values(arr)
        inner, counts = _map_strings(values, fn)
        rows = np.repeat(np.arange(len(arr)), lengths)
        cls = pa.LargeListArray if pa.types.is_large_list(t) else pa.ListArray
        offset_type = pa.int64() if pa.types.is_large_list(t) else pa.int32()
        rebuilt = cls.from_arrays(
            pa.array(offsets, offset_type),
            inner,
            type=pa.large_list(inner.type) if cls is pa.LargeListArray else pa.list_(inner.type),
            mask=arr.is_null(),
        )
        return rebuilt.cast(t), {k: _per_row(v, rows, len(arr)) for k, v in counts.items()}
    if pa.types.is_struct(t) and _has_strings(t):
        children, total = [], {}
        for child in arr.flatten():
            if _has_strings(child.type):
                child, counts = _map_strings(child, fn)
                for k, v in counts.items():
                    total[k] = total.get(k, 0) + v
            children.append(child)
        fields = [t.field(i) for i in range(t.num_fields)]
        rebuilt = pa.StructArray.from_arrays(children, fields=fields, mask=arr.is_null())
        return rebuilt, total
    return arr, {}


def _leaves(column: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """Every string inside `column`, flat, with the row each one belongs to."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    t = arr.type
    if _is_string(t):
        return _strings(arr), np.arange(len(arr))
    if pa.types.is_map(t):
        values, _, lengths = _list_values(arr)
        rows = np.repeat(np.arange(len(arr)), lengths)
        parts = [_leaves(values.field(i)) for i in (0, 1)]
        return _join_leaves([(f, rows[p]) for f, p in parts])
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        values, _, lengths = _list_values(arr)
        rows = np.repeat(np.arange(len(arr)), lengths)
        flat, parents = _leaves(values)
        return flat, rows[parents]
    if pa.types.is_struct(t):
        return _join_leaves([_leaves(c) for c in arr.flatten() if _has_strings(c.type)])
    return pa.array([], pa.string()), np.array([], np.int64)


def _join_leaves(parts: list[tuple[pa.Array, np.ndarray]]) -> tuple[pa.Array, np.ndarray]:
    parts = [p for p in parts if len(p[0])]
    if not parts:
        return pa.array([], pa.string()), np.array([], np.int64)
    return pa.concat_arrays([f for f, _ in parts]), np.concatenate([p for _, p in parts])


def _per_row(values: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    dense = np.zeros(n, np.int64)
    np.add.at(dense, rows, values)
    return dense


def _redact_text(arr: pa.Array, detector: Detector) -> tuple[pa.Array, Counts]:
    result = detector.redact_array(arr)
    return result.text, {k: result.counts[k].to_numpy() for k in detector.kinds}


def _pseudonyms(arr: pa.Array, detector: Detector, key: bytes) -> tuple[pa.Array, Counts]:
    result = detector.redact_array(arr)
    counts = {k: result.counts[k].to_numpy() for k in detector.kinds}
    hit = sum(counts.values(), np.zeros(len(arr), np.int64)) > 0
    if not hit.any():
        return arr, counts
    values = arr.to_pylist()
    for i in np.flatnonzero(hit):
        values[i] = pseudonym(values[i], key)
    return pa.array(values, pa.string()), counts


# --- JSON ---------------------------------------------------------------------------------------


def _json_candidates(arr: pa.Array, detector: Detector) -> np.ndarray:
    fired = pc.fill_null(detector.contains_pii(arr), False)
    escaped = pc.fill_null(pc.match_substring(arr, "\\"), False)
    return np.flatnonzero(pc.or_(fired, escaped).to_numpy(zero_copy_only=False))


def _fires(texts: list[str], detector: Detector) -> list[bool]:
    if not texts:
        return []
    return pc.fill_null(detector.contains_pii(pa.array(texts, pa.string())), False).to_pylist()


def _json_rows_with_pii(arr: pa.Array, detector: Detector) -> np.ndarray:
    """Rows whose text, or any key or value (alone or as `"key": "value"`), makes a rule fire."""
    hits = pc.fill_null(detector.contains_pii(arr), False).to_numpy(zero_copy_only=False).copy()
    escaped = pc.fill_null(pc.match_substring(arr, "\\"), False).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(escaped & ~hits)
    texts: list[str] = []
    owners: list[int] = []
    for row in rows:
        try:
            obj = json.loads(arr[int(row)].as_py())
        except json.JSONDecodeError:
            continue
        for text in _texts_of(obj):
            texts.append(text)
            owners.append(int(row))
    for owner, hit in zip(owners, _fires(texts, detector), strict=True):
        hits[owner] |= hit
    return hits


def _texts_of(obj: object, *, pairs: bool = True) -> list[str]:
    """Every key and string value inside a JSON value; with `pairs`, also each string member as
    `"key": "value"` (a rule may need the key as context)."""
    out: list[str] = []
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, str):
            out.append(o)
        elif isinstance(o, list):
            stack.extend(o)
        elif isinstance(o, dict):
            for k, v in o.items():
                out.append(k)
                if pairs and isinstance(v, str):
                    out.append(_pair(k, v))
                stack.append(v)
    return out


def _pair(key: str, value: str) -> str:
    return f'"{key}": "{value}"'


class _LeafRedactor:
    """Redacts every distinct key and string value of parsed JSON documents in two batched
    detector passes: each string alone, then each object member as `"key": "value"`."""

    def __init__(self, detector: Detector, docs: list[object]):
        self.detector = detector
        self.kinds = detector.kinds
        strings: dict[str, None] = {}
        for doc in docs:
            for text in _texts_of(doc, pairs=False):
                strings.setdefault(text)
        self.leaf = self._redact(list(strings))
        pairs: dict[tuple[str, str], None] = {}
        for doc in docs:
            for k, v in _members(doc):
                pairs.setdefault((self.leaf[k][0], self.leaf[v][0]))
        found = self._redact([_pair(k, v) for k, v in pairs])
        self.pair: dict[tuple[str, str], tuple[str, np.ndarray]] = {}
        placeholders = detector.placeholders
        for k, v in pairs:
            text, counts = found[_pair(k, v)]
            if not counts.any():
                continue
            prefix = f'"{k}": "'
            if text.startswith(prefix) and text.endswith('"'):
                value = text[len(prefix) : -1]
            else:  # the finding covers the key too: the value goes whole
                value = placeholders[self.kinds[int(np.flatnonzero(counts)[0])]]
            self.pair[(k, v)] = (value, counts)

    def _redact(self, texts: list[str]) -> dict[str, tuple[str, np.ndarray]]:
        if not texts:
            return {}
        result = self.detector.redact_array(pa.array(texts, pa.string()))
        counts = np.stack([result.counts[k].to_numpy() for k in self.kinds], axis=1)
        return {t: (r, c) for t, r, c in zip(texts, result.text.to_pylist(), counts, strict=True)}

    def rebuild(self, obj: object, found: np.ndarray) -> object:
        if isinstance(obj, str):
            text, counts = self.leaf[obj]
            found += counts
            return text
        if isinstance(obj, list):
            return [self.rebuild(v, found) for v in obj]
        if isinstance(obj, dict):
            out: dict[str, object] = {}
            for k, v in obj.items():
                new_key, counts = self.leaf[k]
                found += counts
                if isinstance(v, str):
                    value, counts = self.leaf[v]
                    found += counts
                    if (new_key, value) in self.pair:
                        value, counts = self.pair[(new_key, value)]
                        found += counts
                else:
                    value = self.rebuild(v, found)
                out[_free_key(out, new_key)] = value
            return out
        return obj


def _free_key(taken: dict, key: str) -> str:
    # Two keys redacted to the same placeholder keep both values.
    if key not in taken:
        return key
    n = 2
    while f"{key} {n}" in taken:
        n += 1
    return f"{key} {n}"


def _members(obj: object) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, list):
            stack.extend(o)
        elif isinstance(o, dict):
            for k, v in o.items():
                if isinstance(v, str):
                    out.append((k, v))
                else:
                    stack.append(v)
    return out


# --- counts ------------------------------------------------------------------------------------


def _counts_table(totals: Counts, detector: Detector) -> pa.Table:
    return pa.table(
        {k: pa.array(totals[k]) for k in detector.kinds},
        schema=pa.schema([(k, pa.int64()) for k in detector.kinds]),
    )


def _as_map(totals: Counts, n: int) -> tuple[pa.Array, pa.Array]:
    total = np.zeros(n, np.int64)
    for col in totals.values():
        total += col
    maps: list = [[] for _ in range(n)]
    for i in np.flatnonzero(total):  # only rows with a finding: rare in production text
        maps[i] = [(k, int(v[i])) for k, v in totals.items() if v[i]]
    return pa.array(maps, PII_COUNTS_TYPE), pa.array(total)
