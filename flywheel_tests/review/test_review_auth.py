"""Operator tokens and session cookies: parsing `name=token` pairs, telling operators from
producers, and signed cookies that expire and cannot be forged or carried to another process."""

from __future__ import annotations

import pytest

from flywheel_assets.review.auth import (
    MIN_TOKEN_CHARS,
    SESSION_SECONDS,
    Role,
    Sessions,
    TokenError,
    parse_operator_tokens,
)

ALICE = "alice-token-000000001"
BOB = "bob-token-0000000002"
PRODUCER = "producer-token-000003"
NOW = 1_700_000_000.0  # in the past: a cookie signed then has expired by now


def test_pairs_become_token_to_name():
    parsed = parse_operator_tokens(f" alice = {ALICE} ,bob={BOB},, ", [PRODUCER])
    assert parsed == {ALICE: "alice", BOB: "bob"}


def test_a_token_may_hold_equals_signs():
    token = "YWxpY2UtdG9rZW4tMDAx=="
    assert parse_operator_tokens(f"alice={token}") == {token: "alice"}


def test_names_may_hold_dots_at_signs_and_dashes():
    assert parse_operator_tokens(f"a.li-ce_1@ops={ALICE}") == {ALICE: "a.li-ce_1@ops"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (ALICE, "name=token"),
        (f"={ALICE}", "name=token"),
        (f"al ice={ALICE}", "name=token"),
        (f"alice/x={ALICE}", "name=token"),
        (f"{'a' * 65}={ALICE}", "name=token"),
        ("alice=", "shorter"),
        ("alice=" + "x" * (MIN_TOKEN_CHARS - 1), "shorter"),
        (f"alice={PRODUCER}", "producer"),
        (f"alice={ALICE},bob={ALICE}", "share a token"),
        ("", "at least one"),
        (" , ,", "at least one"),
    ],
)
def test_unusable_tokens_are_refused(text, message):
    with pytest.raises(TokenError, match=message):
        parse_operator_tokens(text, [PRODUCER])


def test_a_token_of_exactly_the_minimum_length_is_accepted():
    token = "x" * MIN_TOKEN_CHARS
    assert parse_operator_tokens(f"alice={token}") == {token: "alice"}


def test_token_errors_are_value_errors():
    # Callers that report bad configuration catch ValueError.
    with pytest.raises(ValueError):
        parse_operator_tokens("")


@pytest.fixture
def sessions() -> Sessions:
    return Sessions({ALICE: "alice", BOB: "bob"}, [PRODUCER])


def test_role_of_an_operator_token_is_the_operator(sessions):
    assert sessions.role_of_token(ALICE) == Role("alice")
    assert sessions.role_of_token(BOB) == Role("bob", producer=False)


def test_a_producer_token_is_known_but_no_operator(sessions):
    assert sessions.role_of_token(PRODUCER) == Role(None, producer=True)


@pytest.mark.parametrize("token", ["", "nobody-token-0000009", ALICE + "x", ALICE[:-1], "é" * 20])
def test_an_unknown_token_has_no_role(sessions, token):
    assert sessions.role_of_token(token) == Role(None, producer=False)


def test_a_cookie_names_its_operator_until_it_expires(sessions):
    cookie = sessions.cookie_for("alice", NOW)
    assert sessions.operator_of_cookie(cookie, NOW) == "alice"
    assert sessions.operator_of_cookie(cookie, NOW + SESSION_SECONDS - 1) == "alice"
    assert sessions.operator_of_cookie(cookie, NOW + SESSION_SECONDS + 1) is None


def test_a_cookie_without_now_uses_the_clock(sessions):
    assert sessions.operator_of_cookie(sessions.cookie_for("bob")) == "bob"
    assert sessions.operator_of_cookie(sessions.cookie_for("bob", NOW)) is None  # long expired


def test_a_tampered_name_is_refused(sessions):
    _, expires, signature = sessions.cookie_for("alice", NOW).split("|")
    assert sessions.operator_of_cookie(f"bob|{expires}|{signature}", NOW) is None


def test_a_tampered_expiry_is_refused(sessions):
    operator, expires, signature = sessions.cookie_for("alice", NOW).split("|")
    later = int(expires) + SESSION_SECONDS
    assert sessions.operator_of_cookie(f"{operator}|{later}|{signature}", NOW) is None
    # the untampered cookie is refused at the time the forged one would still be good
    assert sessions.operator_of_cookie(f"{operator}|{expires}|{signature}", later - 1) is None


def test_a_tampered_signature_is_refused(sessions):
    cookie = sessions.cookie_for("alice", NOW)
    flipped = cookie[:-1] + ("0" if cookie[-1] != "0" else "1")
    assert sessions.operator_of_cookie(flipped, NOW) is None


def test_a_cookie_from_another_process_is_refused(sessions):
    # Same operators, but a new random key: a restart signs everyone out.
    other = Sessions({ALICE: "alice", BOB: "bob"}, [PRODUCER])
    cookie = other.cookie_for("alice", NOW)
    assert other.operator_of_cookie(cookie, NOW) == "alice"
    assert sessions.operator_of_cookie(cookie, NOW) is None


def test_an_operator_no_longer_configured_is_signed_out(sessions):
    cookie = sessions.cookie_for("carol", NOW)  # correctly signed, but carol has no token
    assert sessions.operator_of_cookie(cookie, NOW) is None


@pytest.mark.parametrize(
    "cookie",
    [None, "", "alice", "alice|123", "alice|123|abc|def", "||", "alice|soon|abc", "alice|-1|abc"],
)
def test_garbage_cookies_are_refused(sessions, cookie):
    assert sessions.operator_of_cookie(cookie, NOW) is None


def test_a_signed_cookie_with_a_non_numeric_expiry_is_refused(sessions):
    # Correctly signed by this process, so only the expiry check can refuse it.
    payload = "alice|never"
    cookie = f"{payload}|{sessions._sign(payload)}"
    assert sessions.operator_of_cookie(cookie, NOW) is None


@pytest.mark.parametrize("cookie", ["alice|1700043200|é", "é|1700043200|abc", "alice|1700043200|"])
def test_cookies_with_non_ascii_characters_are_refused(sessions, cookie):
    # A Cookie header is decoded as Latin-1, so a client can send any of these characters.
    assert sessions.operator_of_cookie(cookie, NOW) is None
