"""Tests for the PII detector: labelled corpus, property tests, custom patterns and Arrow edges."""

from __future__ import annotations

import re
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flywheel_assets.privacy import pii
from flywheel_assets.privacy.pii import DEFAULT_PATTERNS, VALIDATORS, Detector, PatternSpec
from flywheel_assets.privacy.validators import card, iban, ipv4, ipv6, luhn_valid, phone, ssn
from flywheel_tests.support.pii_corpus import NEGATIVES, POSITIVES, leaked

ALL_KINDS = {
    "email", "phone", "ssn", "card", "iban", "ip", "mac", "secret", "url_credentials",
    "address", "person", "passport", "driver_license", "national_insurance", "dob",
}  # fmt: skip
PLACEHOLDER = {
    "address": "[ADDRESS]",
    "person": "[PERSON]",
    "passport": "[PASSPORT]",
    "driver_license": "[DRIVER_LICENSE]",
    "national_insurance": "[NATIONAL_INSURANCE]",
    "dob": "[DOB]",
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "ssn": "[SSN]",
    "card": "[CARD]",
    "iban": "[IBAN]",
    "ip": "[IP]",
    "mac": "[MAC]",
    "secret": "[SECRET]",
    "url_credentials": "[URL_CREDENTIALS]",
}
# Hypothesis: bounded (each example carries up to four rows) and without an on-disk example
# database, so the file stays fast and leaves nothing behind.
PROPERTY = settings(
    max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
FUZZ = settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector()


def _rows(detector: Detector, texts: list[str]) -> tuple[list[str], list[dict[str, int]]]:
    result = detector.redact_array(pa.array(texts, pa.string()))
    return result.text.to_pylist(), result.counts.to_pylist()


# --- Labelled corpus -------------------------------------------------------------------------


def test_corpus_covers_every_kind() -> None:
    assert len(POSITIVES) >= 150
    assert len(NEGATIVES) >= 110
    n_values = sum(len(p.hits) for p in POSITIVES)
    assert n_values >= 170
    assert {kind for p in POSITIVES for _, kind in p.hits} == ALL_KINDS
    per_kind = Counter(kind for p in POSITIVES for _, kind in p.hits)
    # Every kind added with the gazetteer and context rules has positives in several contexts.
    assert all(per_kind[k] >= 3 for k in ALL_KINDS), per_kind
    categories = Counter(n.category for n in NEGATIVES)
    assert all(categories[k] >= 2 for k in ("address", "person", "dob", "passport")), categories


def test_partial_redaction_counts_as_a_miss() -> None:
    text = "Ship it to 221B Baker Street, London NW1 6XE please."
    value = "221B Baker Street, London NW1 6XE"
    assert leaked(text, value, "Ship it to 221B [ADDRESS], London NW1 6XE please.")
    assert leaked(text, value, "Ship it to [ADDRESS] please.") == []


def _score(detector: Detector) -> dict[str, object]:
    """Recall over labelled values and precision over all redactions, with the failures."""
    out, counts = _rows(detector, [p.text for p in POSITIVES])
    missed, wrong_counts, lost = [], [], []
    caught = expected_total = 0
    for p, text, row in zip(POSITIVES, out, counts, strict=True):
        for value, kind in p.hits:
            expected_total += 1
            if value not in text and PLACEHOLDER[kind] in text and not leaked(p.text, value, text):
                caught += 1
            else:
                missed.append((p.text, value, kind, text))
        expected = Counter(kind for _, kind in p.hits)
        found = {k: v for k, v in row.items() if v}
        if found != dict(expected):
            wrong_counts.append((p.text, dict(expected), found))
        lost += [(p.text, keep, text) for keep in p.keep if keep not in text]
    neg_out, neg_counts = _rows(detector, [n.text for n in NEGATIVES])
    changed = [
        (n.text, text, {k: v for k, v in row.items() if v})
        for n, text, row in zip(NEGATIVES, neg_out, neg_counts, strict=True)
        if text != n.text
    ]
    redactions = sum(sum(row.values()) for row in counts + neg_counts)
    spurious = sum(sum(row.values()) for row in neg_counts) + sum(
        max(0, sum(found.values()) - sum(exp.values())) for _, exp, found in wrong_counts
    )
    return {
        "recall": caught / expected_total,
        "precision": (redactions - spurious) / redactions,
        "missed": missed,
        "wrong_counts": wrong_counts,
        "lost": lost,
        "changed_negatives": changed,
    }


def test_corpus_recall_and_precision(detector: Detector) -> None:
    score = _score(detector)
    print(
        f"\nPII corpus: recall={score['recall']:.3f} precision={score['precision']:.3f} "
        f"({sum(len(p.hits) for p in POSITIVES)} values, {len(NEGATIVES)} negatives)"
    )
    assert score["missed"] == []
    assert score["wrong_counts"] == []
    assert score["lost"] == []
    assert score["changed_negatives"] == []
    assert score["recall"] == 1.0
    assert score["precision"] == 1.0


def test_negatives_are_not_flagged(detector: Detector) -> None:
    flags = detector.contains_pii(pa.array([n.text for n in NEGATIVES]))
    assert [n.text for n, f in zip(NEGATIVES, flags.to_pylist(), strict=True) if f] == []


def test_redacted_corpus_is_clean_and_idempotent(detector: Detector) -> None:
    texts = [p.text for p in POSITIVES] + [n.text for n in NEGATIVES]
    once = detector.redact_array(pa.array(texts))
    twice = detector.redact_array(once.text)
    assert twice.text.to_pylist() == once.text.to_pylist()
    assert sum(twice.totals().values()) == 0
    assert not any(detector.contains_pii(once.text).to_pylist())
    assert all(detector.contains_pii(pa.array([p.text for p in POSITIVES])).to_pylist())


@pytest.mark.parametrize("spec", DEFAULT_PATTERNS, ids=lambda s: f"{s.name}:{s.regex[:24]}")
def test_re2_and_python_agree_on_corpus(spec: PatternSpec) -> None:
    texts = [p.text for p in POSITIVES] + [n.text for n in NEGATIVES]
    in_re2 = pc.match_substring_regex(pa.array(texts), spec.regex).to_pylist()
    rx = re.compile(spec.regex, re.ASCII)
    assert in_re2 == [rx.search(t) is not None for t in texts]


# --- Property tests --------------------------------------------------------------------------

WORDS = st.lists(
    st.sampled_from(["hello", "please", "contact", "the", "data", "via", "ok", "note"]),
    max_size=3,
).map(" ".join)
BEFORE = st.sampled_from([" ", "(", "<", '"', "'", ": ", "\n", "\t", "; "])
AFTER = st.sampled_from([" ", ")", ">", '"', "'", ", ", ". ", ";", "!", "\n", "? "])


def _luhn_check_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # doubled once the check digit is appended
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return str((10 - total % 10) % 10)


@st.composite
def emails(draw: st.DrawFn) -> str:
    local_chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-"
    local = draw(st.text(local_chars, min_size=1, max_size=20))
    label = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)
    labels = draw(
        st.lists(st.tuples(label, st.sampled_from(["", "-x", "-2"])), min_size=1, max_size=3)
    )
    tld = draw(st.text("abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=6))
    domain = ".".join(a + b for a, b in labels)
    return f"{local}@{domain}.{tld}"


def _group(digits: str, seps: list[str]) -> str:
    groups = [digits[i : i + 4] for i in range(0, len(digits), 4)]
    return groups[0] + "".join(s + g for s, g in zip(seps, groups[1:], strict=False))


@st.composite
def card_numbers(draw: st.DrawFn, valid: bool = True, length: int | None = None) -> str:
    if valid:
        prefix = draw(
            st.sampled_from(
                ["4", "51", "55", "2221", "2720", "34", "37", "6011", "65", "62", "35", "36", "30"]
            )
        )
    else:
        prefix = draw(st.sampled_from("0123456789"))
    n = length or draw(st.integers(13, 19))
    body = prefix + draw(
        st.text("0123456789", min_size=n - 1 - len(prefix), max_size=n - 1 - len(prefix))
    )
    check = _luhn_check_digit(body)
    if not valid:
        check = str((int(check) + draw(st.integers(1, 9))) % 10)
    seps = draw(st.lists(st.sampled_from([" ", "-", ""]), min_size=4, max_size=4))
    return _group(body + check, seps)


IBAN_LENGTHS = {"GB": 22, "DE": 22, "FR": 27, "NL": 18, "ES": 24, "IT": 27, "BE": 16, "CH": 21,
                "NO": 15, "PL": 28, "AT": 20, "SE": 24, "MT": 31, "LC": 32}  # fmt: skip


@st.composite
def ibans(draw: st.DrawFn) -> str:
    country = draw(st.sampled_from(sorted(IBAN_LENGTHS)))
    n = IBAN_LENGTHS[country] - 4
    bban = draw(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=n, max_size=n))
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    compact = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    if draw(st.booleans()):
        return compact
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


ipv4_addresses = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))


def embedded(values: st.SearchStrategy[str]) -> st.SearchStrategy[list[tuple[str, ...]]]:
    """1-4 rows per example, each a value between words and punctuation: (before, value, after)."""
    row = st.builds(
        lambda w1, s1, v, s2, w2: (f"{w1}{s1}", v, f"{s2}{w2}"), WORDS, BEFORE, values, AFTER, WORDS
    )
    return st.lists(row, min_size=1, max_size=4)


def _assert_all_caught(detector: Detector, rows: list[tuple[str, ...]], kind: str) -> None:
    result = detector.redact_array(pa.array(["".join(r) for r in rows]))
    expected = [f"{before}{PLACEHOLDER[kind]}{after}" for before, _, after in rows]
    assert result.text.to_pylist() == expected
    assert result.counts.column(kind).to_pylist() == [1] * len(rows)
    assert sum(result.totals().values()) == len(rows)


@PROPERTY
@given(rows=embedded(emails()))
def test_property_emails_caught(detector: Detector, rows) -> None:
    _assert_all_caught(detector, rows, "email")


@PROPERTY
@given(rows=embedded(card_numbers()))
def test_property_luhn_cards_caught(detector: Detector, rows) -> None:
    _assert_all_caught(detector, rows, "card")


@PROPERTY
@given(rows=embedded(ipv4_addresses))
def test_property_ipv4_caught(detector: Detector, rows) -> None:
    _assert_all_caught(detector, rows, "ip")


@PROPERTY
@given(rows=embedded(ibans()))
def test_property_ibans_caught(detector: Detector, rows) -> None:
    _assert_all_caught(detector, rows, "iban")


@PROPERTY
@given(rows=embedded(card_numbers(valid=False, length=16)))
def test_property_luhn_invalid_16_digits_untouched(detector: Detector, rows) -> None:
    assert not any(luhn_valid(v.replace(" ", "").replace("-", "")) for _, v, _ in rows)
    texts = ["".join(r) for r in rows]
    result = detector.redact_array(pa.array(texts))
    assert result.text.to_pylist() == texts
    assert sum(result.totals().values()) == 0


CORPUS_TEXTS = [p.text for p in POSITIVES] + [n.text for n in NEGATIVES]
TRICKY = st.text("0123456789abcdefABCDEF .:-+@()[]=/#?&x\n", max_size=60)


@FUZZ
@given(
    parts=st.lists(st.one_of(st.sampled_from(CORPUS_TEXTS), TRICKY), min_size=1, max_size=4),
    joiner=st.sampled_from([" ", "", "\n", ", "]),
)
def test_property_redaction_is_idempotent_and_clean(detector: Detector, parts, joiner) -> None:
    once = detector.redact_array(pa.array([joiner.join(parts)]))
    twice = detector.redact_array(once.text)
    assert twice.text.to_pylist() == once.text.to_pylist()
    assert detector.contains_pii(once.text).to_pylist() == [False]


@FUZZ
@given(text=TRICKY)
def test_property_re2_and_python_agree(text: str) -> None:
    arr = pa.array([text])
    for spec in DEFAULT_PATTERNS:
        in_re2 = pc.match_substring_regex(arr, spec.regex)[0].as_py()
        assert in_re2 == (re.compile(spec.regex, re.ASCII).search(text) is not None), spec


# --- Custom patterns -------------------------------------------------------------------------

EMPLOYEE = PatternSpec("employee_id", r"\bEMP-\d{6}\b", "[EMPLOYEE_ID]")


def test_custom_pattern() -> None:
    detector = Detector(extra_patterns=[EMPLOYEE])
    assert "employee_id" in detector.kinds
    assert detector.placeholders["employee_id"] == "[EMPLOYEE_ID]"
    out, counts = detector.redact("Ask EMP-123456 or EMP-654321 (not EMP-12345), bob@example.com")
    assert out == "Ask [EMPLOYEE_ID] or [EMPLOYEE_ID] (not EMP-12345), [EMAIL]"
    assert counts == {"employee_id": 2, "email": 1}
    assert detector.redact(out) == (out, {})


def test_custom_pattern_from_dicts_with_validator_and_value_group() -> None:
    account = "1234567890"
    account = account[:-1] + _luhn_check_digit(account[:-1])
    detector = Detector(
        extra_patterns=[
            {"name": "employee_id", "regex": r"\bEMP-\d{6}\b", "placeholder": "[EMPLOYEE_ID]"},
            {
                "name": "account",
                "regex": r"\bACCT-(?P<value>\d{10})\b",
                "placeholder": "[ACCOUNT]",
                "validator": "luhn",
            },
        ]
    )
    bad = account[:-1] + str((int(account[-1]) + 1) % 10)
    out, counts = detector.redact(f"EMP-000001 owns ACCT-{account}, not ACCT-{bad}")
    assert out == f"[EMPLOYEE_ID] owns ACCT-[ACCOUNT], not ACCT-{bad}"
    assert counts == {"employee_id": 1, "account": 1}


def test_default_detector_ignores_custom_format(detector: Detector) -> None:
    assert detector.redact("EMP-123456") == ("EMP-123456", {})
    assert "employee_id" not in detector.kinds


def test_unknown_validator_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown validator 'nope'.*luhn"):
        Detector([PatternSpec("employee_id", r"EMP-\d{6}", "[E]", validator="nope")])


def test_invalid_regex_names_the_pattern() -> None:
    with pytest.raises(ValueError, match=r"pattern 'broken'.*invalid regex"):
        Detector([PatternSpec("broken", r"EMP-(\d{6}", "[E]")])


def test_regex_outside_re2_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"pattern 'lookbehind'.*RE2"):
        Detector([PatternSpec("lookbehind", r"(?<=EMP-)\d{6}", "[E]")])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "x", "regex": "a", "placeholder": "[X]", "colour": "red"}, "unknown pattern"),
        ({"name": "x", "regex": "a"}, "missing required"),
        ({"name": "Bad Name", "regex": "a", "placeholder": "[X]"}, "pattern name"),
        ({"name": "x", "regex": r"\d*", "placeholder": "[X]"}, "empty string"),
        ({"name": "x", "regex": "a", "placeholder": ""}, "placeholder"),
        ({"name": "x", "regex": "EMP", "placeholder": "[bob@example.com]"}, "detected as PII"),
    ],
)
def test_bad_pattern_data_is_rejected(spec: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Detector([spec])


def test_validator_registry() -> None:
    assert {"luhn", "card", "iban", "ssn", "ipv4", "ipv6", "phone", "nino", "person"} <= set(
        VALIDATORS
    )
    assert card("4111 1111 1111 1111") and not card("4111 1111 1111 1112")
    assert not card("1705312245123")  # unformatted run without a card network prefix
    assert iban("GB82 WEST 1234 5698 7654 32") and not iban("GB83 WEST 1234 5698 7654 32")
    assert ssn("123-45-6789")
    assert not any(ssn(s) for s in ["000-12-3456", "666-12-3456", "912-12-3456", "123-00-4567"])
    assert ipv4("255.0.0.1") and not ipv4("256.0.0.1") and not ipv4("1.2.3.4.5")
    assert ipv6("2001:db8::1") and not ipv6("12:30:45") and not ipv6("a::b")
    assert ipv6("::1") and not ipv6("::add") and not ipv6("::")
    assert phone("+44 20 7946 0958") and not phone("+1 234")


# --- Arrow behaviour -------------------------------------------------------------------------


def test_kinds_and_placeholders(detector: Detector) -> None:
    assert set(detector.kinds) == ALL_KINDS
    assert detector.placeholders == {k: PLACEHOLDER[k] for k in detector.kinds}
    assert {s.placeholder for s in DEFAULT_PATTERNS} == set(PLACEHOLDER.values())


def test_per_row_counts(detector: Detector) -> None:
    arr = pa.array(
        [
            "a@b.com and c@d.org, call 555-123-4567",
            "nothing to see",
            None,
            "4111 1111 1111 1111 / 123-45-6789 / 10.0.0.1 / password=hunter22",
        ]
    )
    result = detector.redact_array(arr)
    zero = dict.fromkeys(detector.kinds, 0)
    assert result.counts.column_names == detector.kinds
    assert result.counts.to_pylist() == [
        {**zero, "email": 2, "phone": 1},
        zero,
        zero,
        {**zero, "card": 1, "ssn": 1, "ip": 1, "secret": 1},
    ]
    assert result.text.to_pylist() == [
        "[EMAIL] and [EMAIL], call [PHONE]",
        "nothing to see",
        None,
        "[CARD] / [SSN] / [IP] / password=[SECRET]",
    ]
    assert result.totals() == {
        **zero,
        "email": 2,
        "phone": 1,
        "card": 1,
        "ssn": 1,
        "ip": 1,
        "secret": 1,
    }
    assert detector.contains_pii(arr).to_pylist() == [True, False, None, True]


def test_nulls_empty_and_types(detector: Detector) -> None:
    result = detector.redact_array(pa.array(["", None, "x@y.io"], pa.large_string()))
    assert result.text.type == pa.large_string()
    assert result.text.to_pylist() == ["", None, "[EMAIL]"]
    assert result.text.null_count == 1

    chunked = pa.chunked_array([["x@y.io", None], [], ["plain"]])
    result = detector.redact_array(chunked)
    assert isinstance(result.text, pa.Array)
    assert result.text.to_pylist() == ["[EMAIL]", None, "plain"]

    assert detector.redact_array(pa.array([], pa.string())).counts.num_rows == 0
    assert detector.redact_array(pa.nulls(2)).text.to_pylist() == [None, None]
    assert detector.redact("") == ("", {})
    with pytest.raises(TypeError):
        detector.redact_array(pa.array([1, 2]))


def test_ordering_avoids_partial_redaction(detector: Detector) -> None:
    assert detector.redact("4111-1111-1111-1111")[0] == "[CARD]"
    assert detector.redact("GB82 WEST 1234 5698 7654 32")[0] == "[IBAN]"
    assert detector.redact("https://u:pw@mail.example.com/")[0] == (
        "https://[URL_CREDENTIALS]@mail.example.com/"
    )
    assert detector.redact(f"token={'x' * 8}.{'y' * 8} sent to bob@example.com")[0] == (
        "token=[SECRET] sent to [EMAIL]"
    )


def test_union_prefilters_and_python_path_change_nothing(
    monkeypatch: pytest.MonkeyPatch, detector: Detector
) -> None:
    texts = pa.array([*CORPUS_TEXTS, None, ""])
    # Union prefilters on however little text there is...
    monkeypatch.setattr(pii, "_UNION_MIN_BYTES", 0)
    expected = detector.redact_array(texts)
    # ...against every row visited by every rule, each replaced by Python's re instead of RE2.
    monkeypatch.setattr(pii, "_union_regex", lambda regex: None)
    slow = Detector()
    for rule in slow._rules:
        rule.rewrite = None
    result = slow.redact_array(texts)
    assert result.text.equals(expected.text)
    assert result.counts.equals(expected.counts)
