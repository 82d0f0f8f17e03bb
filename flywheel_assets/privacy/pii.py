"""PII and secret detection and redaction for Arrow string columns, vectorized with RE2.

Each hit becomes a typed placeholder such as ``[EMAIL]``; per-row counts by kind are returned.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from functools import cached_property

import pyarrow as pa
import pyarrow.compute as pc

from flywheel_assets.privacy import contextual as ctx
from flywheel_assets.privacy import gazetteer, validators
from flywheel_assets.privacy.validators import VALIDATORS

__all__ = [
    "DEFAULT_PATTERNS",
    "DETECTOR_VERSION",
    "VALIDATORS",
    "Detector",
    "PatternSpec",
    "RedactionResult",
]

# Bumped by hand when detection changes in a way the rules' data does not show (a helper of a
# validator, the matching engine); `Detector.version` adds a fingerprint of everything else.
DETECTOR_VERSION = "2"
# Unicode noncharacter reserved for internal use: tags each RE2 replacement so the number of
# replacements per row can be counted (Arrow's count_substring_regex re-anchors ^ and \b at every
# match, so it over-counts anchored patterns).
_MARK = "\ufdd0"
_NAME_RE = re.compile(r"[a-z][a-z0-9_]*\Z")
_LEADING_FLAGS_RE = re.compile(r"\(\?([imsU]+)\)")
_VALUE_GROUP = "(?P<value>"
# Rules per second-level union; small enough that a group scan skips most rules on most rows.
_GROUP_SIZE = 4
# Below this much text, scanning with each rule directly is cheaper than compiling a union first.
_UNION_MIN_BYTES = 64 * 1024


@dataclass(frozen=True)
class PatternSpec:
    """One detector rule, expressible as plain data (e.g. from Dagster config).

    ``name`` is the kind reported in the counts (several specs may share a kind), ``regex`` is RE2
    syntax, ``placeholder`` replaces each hit, and ``validator`` optionally names an entry of
    ``VALIDATORS`` that must accept the matched text (or its ``value`` group).
    """

    name: str
    regex: str
    placeholder: str
    validator: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> PatternSpec:
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ValueError(f"unknown pattern field(s) {unknown}; allowed fields: {allowed}")
        missing = [k for k in ("name", "regex", "placeholder") if k not in data]
        if missing:
            raise ValueError(f"pattern {dict(data)!r} is missing required field(s) {missing}")
        return cls(**data)  # type: ignore[arg-type]


# Building blocks shared by several patterns.
_HEX4 = r"[0-9a-f]{1,4}"
_V4 = r"\d{1,3}(?:\.\d{1,3}){3}"
_SECRET_KEY_WORDS = (
    r"(?:password|passwd|passphrase|secret(?:[_-]?key)?|token|api[_-]?key|apikey"
    r"|access[_-]?key|private[_-]?key)"
)
# "key=", "key: ", '"key": ' and friends, with optional (JSON-escaped) quotes around the key.
_SECRET_KEY = r"\b[a-z0-9_-]*" + _SECRET_KEY_WORDS + r"\\?[\"']?[ \t]*(?::=|=>|[:=])[ \t]*"
# A secret value does not start with a bracket (a placeholder), brace, angle or quote, so
# templates like "{{ token }}", "<redacted>" and already-redacted output are left alone.
_SECRET_START = r"[^\s\"'<>\[\]{}()&,;=\\]"
_SECRET_VALUE = _SECRET_START + r"[^\s\"'<>&,;)}\]\\]{2,}"

DEFAULT_PATTERNS: tuple[PatternSpec, ...] = (
    # Multi-line blocks and URL parts first, so nothing inside them is half-redacted as something
    # else (an email inside user:pass@host, a phone-like run inside a key body).
    PatternSpec(
        "secret",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"(?:(?s:.*?)-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s\\]*)",
        "[SECRET]",
    ),
    PatternSpec(
        "url_credentials",
        r"(?i)\b[a-z][a-z0-9+.-]*://(?P<value>[^\s/?#@\[\]\"'<>]+)@",
        "[URL_CREDENTIALS]",
    ),
    PatternSpec(
        "url_credentials",
        r"(?i)[?&#](?:access_token|refresh_token|id_token|auth_token|session_token|token"
        r"|api_key|api-key|apikey|key|client_secret|secret|password|passwd|pwd|sig|signature"
        r"|x-amz-signature|x-amz-credential|x-amz-security-token|sessionid|session_id|jwt)"
        r"=(?P<value>[^&#;\s\"'<>\[\]]+)",
        "[URL_CREDENTIALS]",
    ),
    PatternSpec(
        "secret",
        r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
        "[SECRET]",
    ),
    # Vendor key formats: OpenAI/Anthropic, AWS access key ids, GitHub, Slack, Stripe, Google,
    # Hugging Face, GitLab.
    PatternSpec(
        "secret",
        r"\b(?:sk-[A-Za-z0-9_-]{20,}|(?:AKIA|ASIA)[0-9A-Z]{16}\b|gh[pousr]_[A-Za-z0-9]{20,}"
        r"|github_pat_[A-Za-z0-9_]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|xapp-[A-Za-z0-9-]{10,}"
        r"|[rs]k_(?:live|test)_[A-Za-z0-9]{16,}|AIza[0-9A-Za-z_-]{35}|hf_[A-Za-z0-9]{30,}"
        r"|glpat-[A-Za-z0-9_-]{20,})",
        "[SECRET]",
    ),
    PatternSpec("secret", r"(?i)\bbearer[ \t]+(?P<value>[A-Za-z0-9._~+/-]{16,}=*)", "[SECRET]"),
    PatternSpec(
        "secret",
        r"(?i)\bauthorization\\?[\"']?[ \t]*[:=][ \t]*\\?[\"']?basic[ \t]+"
        r"(?P<value>[A-Za-z0-9+/]{8,}={0,2})",
        "[SECRET]",
    ),
    # key=value / key: value / "key": "value" / --key value, keeping the key name. A quoted value
    # runs to the closing quote, so a passphrase with spaces goes whole.
    PatternSpec(
        "secret",
        r"(?i)" + _SECRET_KEY + r"\\?[\"'](?P<value>" + _SECRET_START + r"[^\"'\\\n]{2,200})",
        "[SECRET]",
    ),
    PatternSpec(
        "secret",
        r"(?i)(?:" + _SECRET_KEY + r"\\?[\"']?|--[a-z0-9-]*" + _SECRET_KEY_WORDS + r"[ \t]+[\"']?)"
        r"(?P<value>" + _SECRET_VALUE + r")",
        "[SECRET]",
    ),
    PatternSpec(
        "email",
        r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
        "[EMAIL]",
    ),
    # Ids and dates named by their context go before the generic number formats, so a passport
    # number or a birth date is counted as what its context says it is.
    PatternSpec("passport", ctx.PASSPORT, "[PASSPORT]"),
    PatternSpec("driver_license", ctx.DRIVER_LICENSE, "[DRIVER_LICENSE]"),
    PatternSpec("national_insurance", ctx.NATIONAL_INSURANCE, "[NATIONAL_INSURANCE]", "nino"),
    PatternSpec("dob", ctx.DOB, "[DOB]"),
    # A street line goes whole (number, street, unit, city, state, postcode) before anything could
    # take a piece of it.
    PatternSpec("address", ctx.ADDRESS_US_UK, "[ADDRESS]"),
    PatternSpec("address", ctx.ADDRESS_PO_BOX, "[ADDRESS]"),
    PatternSpec("address", ctx.ADDRESS_EU, "[ADDRESS]"),
    PatternSpec("address", ctx.ADDRESS_STREET_FIRST, "[ADDRESS]"),
    PatternSpec("address", ctx.ADDRESS_ROMANCE, "[ADDRESS]"),
    PatternSpec("person", ctx.PERSON_CONTEXT, "[PERSON]", "person"),
    PatternSpec("person", ctx.PERSON_TITLE, "[PERSON]", "person"),
    # Checksummed numbers before phones, so a card or IBAN is never half-redacted as a phone. An
    # IBAN may be typed in lower case; the validator is stricter then.
    PatternSpec(
        "iban",
        r"(?i)\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
        "[IBAN]",
        "iban",
    ),
    # The leading character is consumed instead of a lookbehind (RE2 has none): a '+' means an
    # E.164 phone number, a word character means the digits belong to a longer token.
    PatternSpec(
        "card",
        r"(?:^|[^\w+])(?P<value>\d{4}[ -]?\d{6}[ -]?\d{4,5}"
        r"|\d{4}(?:[ -]?\d{4}){2,3}(?:[ -]?\d{1,4})?)\b",
        "[CARD]",
        "card",
    ),
    PatternSpec("ssn", r"\b(?:\d{3}-\d{2}-\d{4}|\d{3} \d{2} \d{4})\b", "[SSN]", "ssn"),
    # IPv6: full, compressed, and with an embedded IPv4 tail. Times like 12:30:45 have neither
    # eight groups nor '::', and the word boundaries keep scope operators (std::abs) out.
    PatternSpec(
        "ip",
        rf"(?i)\b(?:(?:{_HEX4}:){{6}}{_V4}|{_HEX4}(?::{_HEX4}){{0,4}}::(?:{_HEX4}:){{0,4}}{_V4}"
        rf"|{_HEX4}(?::{_HEX4}){{7}}|{_HEX4}(?::{_HEX4}){{0,5}}::{_HEX4}(?::{_HEX4}){{0,5}})\b"
        rf"|\b{_HEX4}(?::{_HEX4}){{1,6}}::|::(?:{_HEX4}:){{0,4}}{_V4}\b|::{_HEX4}(?::{_HEX4}){{1,6}}\b",
        "[IP]",
        "ipv6",
    ),
    PatternSpec("ip", ctx.IPV6_ONE_GROUP, "[IP]", "ipv6"),
    PatternSpec(
        "mac",
        r"(?i)\b[0-9a-f]{2}(?::[0-9a-f]{2}){5}\b|\b[0-9a-f]{2}(?:-[0-9a-f]{2}){5}\b",
        "[MAC]",
    ),
    # Any number of dotted parts is a candidate so that 1.2.3.4.5 is rejected whole rather than
    # redacted as 1.2.3.4 plus ".5"; the validator then wants exactly four octets.
    PatternSpec("ip", r"\b\d{1,3}(?:\.\d{1,3}){3,}\b", "[IP]", "ipv4"),
    PatternSpec(
        "phone",
        r"(?:\+1[ .-]?|\b1[ .-])?(?:\(\d{3}\)[ .-]?|\b\d{3}[ .-])\d{3}[ .-]\d{4}\b",
        "[PHONE]",
    ),
    PatternSpec(
        "phone",
        r"\+[1-9]\d{0,2}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,5})){1,6}\b",
        "[PHONE]",
        "phone",
    ),
    PatternSpec("phone", ctx.PHONE_IN_CONTEXT, "[PHONE]"),
)


@dataclass(frozen=True)
class RedactionResult:
    """Redacted text plus per-row counts.

    ``text`` has the input's length and nulls; ``counts`` is a table with one int64 column per
    kind (in ``Detector.kinds`` order), one row per input row, 0 for null rows.
    """

    text: pa.Array
    counts: pa.Table

    def totals(self) -> dict[str, int]:
        """Total hits per kind over all rows."""
        return {
            name: int(pc.sum(col).as_py() or 0)
            for name, col in zip(self.counts.column_names, self.counts.columns, strict=True)
        }


def _scan(regex: str) -> Iterable[tuple[int, str, int]]:
    """Yield (index, token, depth) for the regex, skipping escapes and character classes.

    Tokens are "(" / ")" / "|" at their nesting depth; enough structure to split a pattern at its
    value group without a full parser.
    """
    i, depth, n = 0, 0, len(regex)
    while i < n:
        ch = regex[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":
            i += 1
            if i < n and regex[i] == "^":
                i += 1
            if i < n and regex[i] == "]":
                i += 1
            while i < n and regex[i] != "]":
                if regex[i] == "\\":
                    i += 1
                elif regex.startswith("[:", i):
                    end = regex.find(":]", i + 2)
                    i = end + 1 if end != -1 else i
                i += 1
            i += 1
            continue
        if ch == "(":
            yield i, "(", depth
            depth += 1
        elif ch == ")":
            depth -= 1
            yield i, ")", depth
        elif ch == "|":
            yield i, "|", depth
        i += 1


def _split_flags(regex: str) -> tuple[str, str]:
    m = _LEADING_FLAGS_RE.match(regex)
    return (m.group(1), regex[m.end() :]) if m else ("", regex)


def _strip_named_groups(regex: str) -> str:
    out, last = [], 0
    for i, tok, _ in _scan(regex):
        if tok == "(" and regex.startswith("(?P<", i):
            end = regex.index(">", i)
            out.append(regex[last:i] + "(?:")
            last = end + 1
    out.append(regex[last:])
    return "".join(out)


def _scoped(regex: str) -> str:
    """The regex as a self-contained group, leading global flags turned into scoped ones."""
    flags, body = _split_flags(regex)
    return f"(?{flags}:{body})" if flags else f"(?:{body})"


def _value_rewrite(regex: str, placeholder: str) -> tuple[str, str] | None:
    """RE2 regex and rewrite string that replace only the value group, or None if not possible.

    Works when the value group sits at the top level with no top-level alternation around it:
    ``prefix(?P<value>body)suffix`` becomes ``(prefix)(?P<value>body)(suffix)`` and the rewrite
    keeps groups 1 and 3. RE2 rewrites only address groups \\0..\\9.
    """
    flags, body = _split_flags(regex)
    start = body.find(_VALUE_GROUP)
    if start == -1:
        return None
    tokens = list(_scan(body))
    opening = [t for t in tokens if t[0] == start and t[1] == "("]
    if not opening or opening[0][2] != 0:
        return None
    close = next((i for i, tok, d in tokens if tok == ")" and d == 0 and i > start), None)
    if close is None or any(tok == "|" and d == 0 for _, tok, d in tokens):
        return None
    prefix, value, suffix = body[:start], body[start : close + 1], body[close + 1 :]
    wrapped = f"(?P<pii_pre>{prefix}){value}(?P<pii_suf>{suffix})"
    if flags:
        wrapped = f"(?{flags}){wrapped}"
    groups = re.compile(wrapped).groupindex
    pre, suf = groups["pii_pre"], groups["pii_suf"]
    if suf > 9:
        return None
    literal = placeholder.replace("\\", "\\\\")
    return wrapped, f"\\{pre}{_MARK}{literal}\\{suf}"


def _zeros(n: int) -> pa.Array:
    return pa.repeat(pa.scalar(0, pa.int64()), n)


class _Rule:
    """A PatternSpec compiled for both engines."""

    def __init__(self, spec: PatternSpec) -> None:
        name = spec.name
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(
                f"pattern name {name!r} must be lowercase letters, digits and underscores, "
                "starting with a letter (it becomes a column name)"
            )
        if not isinstance(spec.placeholder, str) or not spec.placeholder:
            raise ValueError(f"pattern {name!r}: placeholder must be a non-empty string")
        if _MARK in spec.placeholder:
            raise ValueError(f"pattern {name!r}: placeholder contains a reserved character")
        if spec.validator is not None and spec.validator not in VALIDATORS:
            raise ValueError(
                f"pattern {name!r}: unknown validator {spec.validator!r}; "
                f"valid validators: {sorted(VALIDATORS)}"
            )
        try:
            self.py = re.compile(spec.regex, re.ASCII)
        except (re.error, TypeError) as exc:
            raise ValueError(f"pattern {name!r}: invalid regex {spec.regex!r}: {exc}") from exc
        try:
            pc.match_substring_regex(pa.array([""], pa.string()), spec.regex)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ValueError(
                f"pattern {name!r}: regex {spec.regex!r} is not valid RE2 syntax (RE2 has no "
                f"lookaround or backreferences): {exc}"
            ) from exc
        if any(
            m is not None and m.end() == m.start() for m in map(self.py.search, ("", " ", "a0"))
        ):
            raise ValueError(f"pattern {name!r}: regex {spec.regex!r} matches the empty string")

        self.spec = spec
        self.kind = name
        self.re2 = spec.regex
        self.union_part = _scoped(_strip_named_groups(spec.regex))
        self.has_value = "value" in self.py.groupindex
        self.validator: Callable[[str], bool | tuple[int, int]] | None = (
            VALIDATORS[spec.validator] if spec.validator else None
        )
        # Where possible the replacement happens entirely in RE2; otherwise in Python on the rows
        # RE2 flagged.
        self.rewrite: tuple[str, str] | None = None
        if self.validator is None:
            if self.has_value:
                self.rewrite = _value_rewrite(spec.regex, spec.placeholder)
            else:
                literal = spec.placeholder.replace("\\", "\\\\")
                self.rewrite = (spec.regex, _MARK + literal)

    def python_sub(self, text: str) -> tuple[str, int]:
        hits = 0
        placeholder, validator = self.spec.placeholder, self.validator

        def replace(m: re.Match[str]) -> str:
            nonlocal hits
            if self.has_value and m.group("value") is not None:
                start, end = m.span("value")
            else:
                start, end = m.span()
            if validator is not None:
                verdict = validator(m.string[start:end])
                if not verdict:
                    return m.group(0)
                if isinstance(verdict, tuple):  # only part of the value is PII
                    start, end = start + verdict[0], start + verdict[1]
            hits += 1
            return m.string[m.start() : start] + placeholder + m.string[end : m.end()]

        return self.py.sub(replace, text), hits

    def apply(self, rows: pa.Array) -> tuple[pa.Array, dict[str, pa.Array]]:
        """Redact this rule in ``rows``; return the new rows and per-row hit counts."""
        if self.rewrite is not None and not pc.any(pc.match_substring(rows, _MARK)).as_py():
            # One RE2 pass replaces and marks each hit; a separate match pass first would cost a
            # second regex compile, which dominates on the few rows the unions let through.
            regex, rewrite = self.rewrite
            marked = pc.replace_substring_regex(rows, regex, rewrite)
            counts = pc.fill_null(pc.cast(pc.count_substring(marked, _MARK), pa.int64()), 0)
            if not pc.max(counts).as_py():
                return rows, {}
            return pc.replace_substring(marked, _MARK, ""), {self.kind: counts}
        hit = pc.fill_null(pc.match_substring_regex(rows, self.re2), False)
        if not pc.any(hit).as_py():
            return rows, {}
        subset = rows.filter(hit)
        out, cnt = [], []
        for text in subset.to_pylist():
            new, k = self.python_sub(text)
            out.append(new)
            cnt.append(k)
        replaced = pa.array(out, rows.type)
        counts = pa.array(cnt, pa.int64())
        return (
            pc.replace_with_mask(rows, hit, replaced),
            {self.kind: pc.replace_with_mask(_zeros(len(rows)), hit, counts)},
        )


def _union_regex(regex: str) -> str | None:
    try:
        pc.match_substring_regex(pa.array([""], pa.string()), regex)
    except pa.ArrowInvalid:
        return None  # too large for RE2's memory budget: visit every row instead
    return regex


class _Group:
    """Rules (or groups of rules) behind one RE2 union that selects the rows worth visiting.

    A row the union does not match cannot be changed by any member, so members only ever scan
    the matching rows; nesting groups keeps the per-rule scans small when many rows have PII.
    """

    def __init__(self, children: Sequence[_Rule | _Group]) -> None:
        self.children = list(children)
        self.union_part = "|".join(c.union_part for c in self.children)
        self.union = _union_regex(self.union_part)

    def apply(self, rows: pa.Array) -> tuple[pa.Array, dict[str, pa.Array]]:
        mask = None
        # Arrow compiles a regex on every call, and a union costs about as much to compile as its
        # members together, so it only pays off once there is enough text to skip.
        if self.union is not None and rows.nbytes >= _UNION_MIN_BYTES:
            mask = pc.fill_null(pc.match_substring_regex(rows, self.union), False)
            if not pc.any(mask).as_py():
                return rows, {}
        sub = rows if mask is None else rows.filter(mask)
        totals: dict[str, pa.Array] = {}
        for child in self.children:
            sub, counts = child.apply(sub)
            for kind, hits in counts.items():
                totals[kind] = hits if kind not in totals else pc.add(totals[kind], hits)
        if mask is None:
            return sub, totals
        zeros = _zeros(len(rows))
        return (
            pc.replace_with_mask(rows, mask, sub),
            {k: pc.replace_with_mask(zeros, mask, v) for k, v in totals.items()},
        )


def _as_string_array(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if not isinstance(arr, pa.Array):
        raise TypeError(f"expected a pyarrow Array or ChunkedArray, got {type(arr).__name__}")
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return arr
    if pa.types.is_string_view(t) or pa.types.is_null(t):
        return arr.cast(pa.string())
    raise TypeError(f"expected a string array, got {t}")


class Detector:
    """Detects and redacts PII and secrets in Arrow string arrays.

    ``extra_patterns`` (PatternSpec objects or dicts with the same fields) run before the
    defaults, so a house-specific format wins over a generic one that overlaps it. ``kinds``
    limits the built-in rules to those kinds (all of them by default); ``version`` names the rules.

    One RE2 pass with the union of all patterns picks the candidate rows; rows without one (the vast
    majority of production text) are not touched again. On the candidate rows, unions of a few
    consecutive patterns narrow the rows further, then every pattern runs in order: one without a
    validator is replaced in RE2 (``replace_substring_regex``); one with a validator uses RE2 to
    find the rows with a candidate and Python's ``re`` on just those rows, so the checksum decides.
    Patterns are RE2 syntax (no lookaround, no backreferences) and are compiled for Python with
    ``re.ASCII`` so both engines agree on ``\\d``, ``\\w``, ``\\s`` and ``\\b``. A named group
    ``(?P<value>...)`` limits the replacement (and validation) to that group, e.g.
    ``password=[SECRET]`` keeps the key name.
    """

    def __init__(
        self,
        extra_patterns: Sequence[PatternSpec | Mapping[str, object]] = (),
        *,
        kinds: Iterable[str] | None = None,
    ) -> None:
        if isinstance(extra_patterns, (str, bytes, Mapping)):
            raise TypeError("extra_patterns must be a sequence of PatternSpec or dicts")
        specs = [
            p if isinstance(p, PatternSpec) else PatternSpec.from_dict(p) for p in extra_patterns
        ]
        self._rules = [_Rule(s) for s in (*specs, *_builtin(kinds))]
        self._kinds = list(dict.fromkeys(r.kind for r in self._rules))
        self._placeholders = {r.kind: r.spec.placeholder for r in reversed(self._rules)}
        # Two levels of RE2 unions over the rules, applied in order: the root picks candidate rows
        # of the whole array, each group of consecutive rules the rows worth scanning rule by rule.
        self._root = _Group(
            [
                _Group(self._rules[i : i + _GROUP_SIZE])
                for i in range(0, len(self._rules), _GROUP_SIZE)
            ]
        )
        # Placeholders must never look like PII themselves, or redaction would not be idempotent.
        samples = sorted({r.spec.placeholder for r in self._rules})
        probe = pa.array(samples + [f"x {s} y" for s in samples])
        hits = self.contains_pii(probe).to_pylist()
        flagged = [s for s, hit in zip(samples * 2, hits, strict=True) if hit]
        if flagged:
            raise ValueError(f"placeholder(s) {sorted(set(flagged))} would be detected as PII")

    @cached_property
    def version(self) -> str:
        """A stable name for what this detector finds: DETECTOR_VERSION and a fingerprint of its
        rules (kind, regex, placeholder, validator, in order), the source of the validators it
        uses and, when it checks person names, the gazetteer's size and word lists. Two detectors
        with one version redact every text alike; a new rule or kind gives a new version."""
        used = sorted({r.spec.validator for r in self._rules if r.spec.validator})
        parts: dict[str, object] = {
            "rules": [[r.kind, r.re2, r.spec.placeholder, r.spec.validator] for r in self._rules],
            "validators": {name: inspect.getsource(VALIDATORS[name]) for name in used},
        }
        if used:
            parts["validators_module"] = inspect.getsource(validators)
        if "person" in used:
            words = (gazetteer.first_names(), gazetteer.surnames())
            parts["gazetteer"] = [len(w) for w in words] + [inspect.getsource(gazetteer)]
            parts["gazetteer_words"] = hashlib.sha256(
                "\n".join(sorted(words[0]) + ["--"] + sorted(words[1])).encode()
            ).hexdigest()
        digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
        return f"{DETECTOR_VERSION}.{digest[:12]}"

    @property
    def kinds(self) -> list[str]:
        """Kind names in the order they are first applied; the columns of ``counts``."""
        return list(self._kinds)

    @property
    def placeholders(self) -> dict[str, str]:
        """Placeholder text per kind."""
        return {k: self._placeholders[k] for k in self._kinds}

    def redact_array(self, arr: pa.Array | pa.ChunkedArray) -> RedactionResult:
        """Redact every row; nulls stay null and get zero counts."""
        arr = _as_string_array(arr)
        text, found = self._root.apply(arr)
        zeros = _zeros(len(arr))
        table = pa.table({k: found.get(k, zeros) for k in self._kinds})
        return RedactionResult(text=text, counts=table)

    def redact(self, text: str) -> tuple[str, dict[str, int]]:
        """Redact one string; the dict holds only the kinds that were found."""
        result = self.redact_array(pa.array([text], pa.string()))
        row = result.counts.to_pylist()[0]
        return result.text[0].as_py(), {k: v for k, v in row.items() if v}

    def contains_pii(self, arr: pa.Array | pa.ChunkedArray) -> pa.BooleanArray:
        """True where any rule fires on the row (after validation); null rows stay null."""
        arr = _as_string_array(arr)
        result = self.redact_array(arr)
        total = _zeros(len(arr))
        for col in result.counts.columns:
            total = pc.add(total, col)
        return pc.if_else(pc.is_null(arr), pa.scalar(None, pa.bool_()), pc.greater(total, 0))


def _builtin(kinds: Iterable[str] | None) -> tuple[PatternSpec, ...]:
    """The built-in rules; only those of `kinds` when given (to reproduce an older detector)."""
    if kinds is None:
        return DEFAULT_PATTERNS
    if isinstance(kinds, str):
        raise TypeError("kinds must be a collection of kind names, not one string")
    wanted, known = set(kinds), dict.fromkeys(p.name for p in DEFAULT_PATTERNS)
    unknown = sorted(wanted - set(known))
    if unknown:
        raise ValueError(f"unknown PII kind(s) {unknown}; built-in kinds: {list(known)}")
    return tuple(p for p in DEFAULT_PATTERNS if p.name in wanted)


PATTERNS_ENV = "FLYWHEEL_PII_PATTERNS"


def load_patterns_file(path: str) -> list[PatternSpec]:
    """Extra patterns from a JSON file holding a list of {name, regex, placeholder, validator}."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise ValueError(f"cannot read PII patterns file {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"PII patterns file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ValueError(f"PII patterns file {path} must hold a JSON list of pattern objects")
    return [PatternSpec.from_dict(item) for item in data]
