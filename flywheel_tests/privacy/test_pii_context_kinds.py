"""Property tests for the context kinds: addresses from parts, gazetteer names in sentences."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flywheel_assets.privacy.gazetteer import NOT_NAME_NEXT, ambiguous, first_names, surnames
from flywheel_assets.privacy.pii import Detector
from flywheel_assets.privacy.validators import person

PROPERTY = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector()


def _assert_whole(detector: Detector, rows: list[tuple[str, str, str]], kind: str, ph: str):
    result = detector.redact_array(pa.array(["".join(r) for r in rows]))
    assert result.text.to_pylist() == [f"{a}{ph}{c}" for a, _, c in rows]
    assert result.counts.column(kind).to_pylist() == [1] * len(rows)


STREET_WORDS = ["Oak", "Maple", "Baker", "High", "Church", "Mill", "Elm", "Victoria", "Fifth"]
SUFFIXES = ["Street", "St", "Avenue", "Ave", "Road", "Rd", "Lane", "Drive", "Way", "Close"]
CITIES = ["Springfield", "London", "New York", "Leeds", "Little Whinging", "Austin"]


@st.composite
def street_lines(draw: st.DrawFn) -> str:
    number = f"{draw(st.integers(1, 9999))}{draw(st.sampled_from(['', 'A', 'B']))}"
    words = " ".join(draw(st.lists(st.sampled_from(STREET_WORDS), min_size=1, max_size=2)))
    line = f"{number} {words} {draw(st.sampled_from(SUFFIXES))}"
    unit = draw(st.sampled_from(["", ", Apt 4B", ", Suite 200", " #12"]))
    tail = draw(
        st.sampled_from(
            [
                "",
                f", {draw(st.sampled_from(CITIES))}",
                f", {draw(st.sampled_from(CITIES))}, IL {draw(st.integers(10000, 99999))}",
                f", {draw(st.sampled_from(CITIES))} NW1 6XE",
                " SW1A 2AA",
            ]
        )
    )
    return line + unit + tail


@PROPERTY
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["Ship it to ", "My address is ", "Send it to ", "", "I live at "]),
            street_lines(),
            # No bare "." right after: an abbreviation keeps its period ("St.").
            st.sampled_from(["; ", " please.", ", thanks.", "\n", "", " and call me."]),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_property_street_lines_go_whole(detector: Detector, rows) -> None:
    _assert_whole(detector, rows, "address", "[ADDRESS]")


# Names as the gazetteer holds them, minus the words that need a surname to count.
FIRST = sorted(first_names() - ambiguous() - NOT_NAME_NEXT)
LAST = sorted(surnames() - NOT_NAME_NEXT)
CUES = ["My name is ", "Hi ", "Hi, I'm ", "Dear ", "Thanks, ", "Best regards,\n", "Please ask ",
        "Account holder: ", "This is ", "Tell "]  # fmt: skip


@PROPERTY
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(CUES),
            st.builds(
                lambda f, last: f if last is None else f"{f} {last}",
                st.sampled_from(FIRST),
                st.none() | st.sampled_from(LAST),
            ),
            st.sampled_from([".", ", thanks.", "!", " and I need help.", "\n", ""]),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_property_gazetteer_names_in_sentences(detector: Detector, rows) -> None:
    _assert_whole(detector, rows, "person", "[PERSON]")


@PROPERTY
@given(
    first=st.sampled_from(FIRST),
    product=st.sampled_from(sorted(NOT_NAME_NEXT)),
    cue=st.sampled_from(CUES),
)
def test_property_a_name_before_a_product_word_is_a_product(
    detector: Detector, first: str, product: str, cue: str
) -> None:
    text = f"{cue}{first} {product} is down."
    assert detector.redact(text) == (text, {})


def test_gazetteer_comes_from_faker_locales() -> None:
    first, last = first_names(), surnames()
    assert len(first) > 10_000 and len(last) > 10_000
    assert {"Maria", "James", "Aisha", "José", "Zoë"} <= first
    assert {"Lopez", "Smith", "Khan", "Müller", "O'Brien"} <= last


def test_person_validator_narrows_to_the_name() -> None:
    assert person("Maria Lopez") == (0, len("Maria Lopez"))
    assert person("Mr. Smith") == (0, len("Mr. Smith"))
    assert person("Delta Lake") is False  # a first name before a product word
    assert person("Paris") is False  # ambiguous without a surname
    assert person("Paris Hilton") == (0, len("Paris Hilton"))
    assert person("Maria Lopez Team") == (0, len("Maria Lopez"))
    assert person("Dagster") is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I bank with Main Street Bank.", "I bank with Main Street Bank."),
        ("We visited 3 Main Street Bank branches.", "We visited 3 Main Street Bank branches."),
        ("Call me at 5551234567.", "Call me at [PHONE]."),
        ("Order 5551234567 shipped.", "Order 5551234567 shipped."),
        ("Listening on [::1]:8080", "Listening on [[IP]]:8080"),
        ("Reverse with s[::-1] or a[::2].", "Reverse with s[::-1] or a[::2]."),
        ("iban gb82west12345698765432 ok", "iban [IBAN] ok"),
        ("NI number: BG123456A", "NI number: BG123456A"),  # a prefix HMRC never issues
    ],
)
def test_context_rules(detector: Detector, text: str, expected: str) -> None:
    assert detector.redact(text)[0] == expected
