"""Operators and their sessions: tokens of their own, the name taken from the token, never a form.

Tokens come as `name=token` pairs (comma-separated). A signed session cookie carries the operator's
name after sign-in; the signing key is random per process, so a restart signs everyone out.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

MIN_TOKEN_CHARS = 16
SESSION_SECONDS = 12 * 3600
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


class TokenError(ValueError):
    """Operator tokens that cannot be used; the message says which and why."""


def parse_operator_tokens(text: str, producer_tokens: Iterable[str] = ()) -> dict[str, str]:
    """`alice=token1,bob=token2` as {token: operator name}.

    A producer (collector) token may not double as an operator token: the two roles must not
    reach each other's routes.
    """
    tokens: dict[str, str] = {}
    producers = set(producer_tokens)
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, token = part.partition("=")
        name, token = name.strip(), token.strip()
        if not sep or not _NAME.match(name):
            raise TokenError(f"operator tokens are name=token pairs; {name or part!r} is not")
        if len(token) < MIN_TOKEN_CHARS:
            raise TokenError(f"the token of {name} is shorter than {MIN_TOKEN_CHARS} characters")
        if token in producers:
            raise TokenError(f"the token of {name} is also a producer token")
        if token in tokens:
            raise TokenError(f"{tokens[token]} and {name} share a token")
        tokens[token] = name
    if not tokens:
        raise TokenError("the review page needs at least one operator token")
    return tokens


@dataclass(frozen=True)
class Role:
    operator: str | None  # the operator's name, or None
    producer: bool = False  # a producer token: known, but not allowed here


class Sessions:
    """Looks tokens up and signs the session cookies that stand for them after sign-in."""

    def __init__(self, operators: Mapping[str, str], producer_tokens: Iterable[str] = ()):
        self._operators = dict(operators)
        self._producers = list(producer_tokens)
        self._key = secrets.token_bytes(32)

    def role_of_token(self, token: str) -> Role:
        for known, name in self._operators.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return Role(name)
        producer = any(hmac.compare_digest(p.encode(), token.encode()) for p in self._producers)
        return Role(None, producer=producer)

    def cookie_for(self, operator: str, now: float | None = None) -> str:
        expires = int((now or time.time()) + SESSION_SECONDS)
        payload = f"{operator}|{expires}"
        return f"{payload}|{self._sign(payload)}"

    def operator_of_cookie(self, cookie: str | None, now: float | None = None) -> str | None:
        if not cookie or cookie.count("|") != 2:
            return None
        operator, expires, signature = cookie.split("|")
        expected = self._sign(f"{operator}|{expires}")
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return None
        if not expires.isdigit() or int(expires) < (now or time.time()):
            return None
        return operator if operator in self._operators.values() else None

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()
