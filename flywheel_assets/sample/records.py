"""Builds the sample's records: interactions, feedback, annotations and drift events, the PII
and look-alikes they carry, and the malformed lines the contract must reject."""

from __future__ import annotations

import json
import random
import re
from bisect import bisect
from collections import deque
from datetime import datetime, timedelta
from typing import Any

from .vocabulary import (
    ANNOTATION_TAGS,
    CARRIERS,
    CHANNELS,
    CITIES,
    CLOSERS,
    COMMENTS_NEG,
    COMMENTS_POS,
    COMMENTS_REPORT,
    EDIT_INSERTS,
    EDIT_SENTENCES,
    EMAIL_DOMAINS,
    ERRORS,
    EXTRA_FIELDS,
    FAQ,
    FIRST_NAMES,
    FOLLOW_UPS,
    HOURLY,
    INJECTION_RESPONSES,
    INJECTIONS,
    LAST4,
    LAST_NAMES,
    LOCALES,
    LOOKALIKES,
    MODEL_VERSIONS,
    OPENERS,
    PII_PROMPT,
    PII_RESPONSE,
    PLANS,
    PRODUCTS,
    PROMOS,
    PROMPT_PREFIXES,
    PROMPT_SUFFIXES,
    SIGNATURES,
    SYNONYMS,
    SYSTEM_PROMPTS,
    TOOL_STATUSES,
    TOPIC_NAMES,
    TOPIC_WEIGHTS,
    TOPICS,
    TZ_OFFSETS,
)

SECOND_US = 1_000_000
HOUR_US = 3600 * SECOND_US
DAY_US = 24 * HOUR_US
_BAD_BYTES = "@@BAD_BYTES@@"  # replaced by raw invalid UTF-8 after encoding
_TOPIC_CUM = tuple(sum(TOPIC_WEIGHTS[: i + 1]) for i in range(len(TOPIC_WEIGHTS)))
_FRAME = frozenset(OPENERS + CLOSERS)
_DURATION_RE = re.compile(r"\b(\d{1,2})(?= (?:business |working )?(?:days|minutes|hours|months)|%)")

# ---------------------------------------------------------------------------------------------
# PII and look-alikes.
# ---------------------------------------------------------------------------------------------

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_US_AREAS = ("415", "212", "312", "646", "702", "206", "617", "512", "303", "404")
_INTL_PHONES = ("+44 20 7946 0958", "+49 30 1234567", "+33 1 42 68 53 00", "+61 2 9374 4000")


def luhn_check_digit(payload: str) -> str:
    """The Luhn check digit that makes ``payload + digit`` valid."""
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch)
        if i % 2 == 0:  # these positions are doubled once the check digit is appended
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def iban_check_digits(country: str, bban: str) -> str:
    """ISO 13616 mod-97 check digits for a country code and BBAN."""
    num = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{98 - int(num) % 97:02d}"


def _digits(rng: random.Random, k: int) -> str:
    return "".join(rng.choices("0123456789", k=k))


def _card(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.15:  # Amex: 15 digits, 4-6-5 grouping
        payload = rng.choice(("34", "37")) + _digits(rng, 12)
        num = payload + luhn_check_digit(payload)
        groups = (num[:4], num[4:10], num[10:])
    else:
        prefix = rng.choice(("4", "4", "51", "52", "55", "6011"))
        payload = prefix + _digits(rng, 15 - len(prefix))
        num = payload + luhn_check_digit(payload)
        groups = (num[:4], num[4:8], num[8:12], num[12:])
    sep = rng.choice((" ", " ", "-", ""))
    return sep.join(groups)


def _iban(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.15:
        return rng.choice(("GB82 WEST 1234 5698 7654 32", "DE89 3704 0044 0532 0130 00"))
    country = rng.choice(("GB", "DE", "FR", "NL", "ES"))
    if country == "GB":
        bban = rng.choice(("WEST", "BARC", "NWBK", "HBUK")) + _digits(rng, 14)
    elif country == "NL":
        bban = rng.choice(("ABNA", "INGB", "RABO")) + _digits(rng, 10)
    else:
        bban = _digits(rng, {"DE": 18, "FR": 23, "ES": 20}[country])
    compact = country + iban_check_digits(country, bban) + bban
    if rng.random() < 0.3:
        return compact
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def _ssn(rng: random.Random) -> str:
    area = rng.randint(1, 898)
    if area >= 666:  # 666 and 900-999 are never issued
        area += 1
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _us_phone(rng: random.Random) -> str:
    area, exch, line = rng.choice(_US_AREAS), rng.randint(200, 989), rng.randint(0, 9999)
    fmt = rng.random()
    if fmt < 0.4:
        return f"({area}) {exch}-{line:04d}"
    if fmt < 0.7:
        return f"{area}-{exch}-{line:04d}"
    return f"+1 {area} {exch} {line:04d}"


def _intl_phone(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(_INTL_PHONES)
    cc = rng.choice(("+44 7", "+49 151 ", "+33 6 ", "+31 6 ", "+91 98"))
    return f"{cc}{_digits(rng, 3)} {_digits(rng, 5)}"


def _email(rng: random.Random) -> str:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    style = rng.random()
    local = f"{first}.{last}" if style < 0.6 else f"{first[0]}{last}{rng.randint(1, 99)}"
    return f"{local}@{rng.choice(EMAIL_DOMAINS)}"


def _ipv4(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"{rng.choice(('203.0.113', '198.51.100', '192.0.2'))}.{rng.randint(1, 254)}"
    return (
        f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    )


def _ipv6(rng: random.Random) -> str:
    groups = [f"{rng.getrandbits(16):x}" for _ in range(4)]
    if rng.random() < 0.5:
        return "2001:db8:" + ":".join(groups[:2]) + "::" + groups[3]
    return "2001:0db8:85a3:" + ":".join(groups) + ":7334"


def _mac(rng: random.Random) -> str:
    parts = [f"{rng.getrandbits(8):02x}" for _ in range(6)]
    return ":".join(parts) if rng.random() < 0.6 else "-".join(parts).upper()


def _api_key(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.4:
        return "sk-" + "".join(rng.choices(_ALNUM, k=48))
    if r < 0.55:
        return "sk-proj-" + "".join(rng.choices(_ALNUM, k=40))
    if r < 0.8:
        return "AKIA" + "".join(rng.choices(_B32, k=16))
    return "ghp_" + "".join(rng.choices(_ALNUM, k=36))


def _password(rng: random.Random) -> str:
    base = rng.choice(("Winter", "Summer", "hunter", "P@ssw0rd", "Acme", "letmein", "Dragon"))
    return f"{base}{rng.randint(1, 2026)}{rng.choice(('!', '#', '', '$'))}"


def _cred_url(rng: random.Random) -> str:
    user = rng.choice(("admin", "deploy", "svc_orders", rng.choice(FIRST_NAMES)))
    host = rng.choice(
        (
            "postgres://{u}:{p}@db.internal.example.com:5432/orders",
            "https://{u}:{p}@hooks.example.com/acme/webhook",
            "ftp://{u}:{p}@files.example.org/export.csv",
            "mongodb://{u}:{p}@cluster0.example.net/admin",
        )
    )
    return host.format(u=user, p=_password(rng))


_PII_MAKERS = {
    "email": _email,
    "phone": _us_phone,
    "intl_phone": _intl_phone,
    "ssn": _ssn,
    "card": _card,
    "iban": _iban,
    "ipv4": _ipv4,
    "ipv6": _ipv6,
    "mac": _mac,
    "api_key": _api_key,
    "password": _password,
    "cred_url": _cred_url,
}


class _Slots(dict):
    """Template values created lazily, so a prompt and its response share one order/product."""

    __slots__ = ("rng", "dates")

    def __init__(self, rng: random.Random, dates: tuple[str, ...]) -> None:
        super().__init__()
        self.rng = rng
        self.dates = dates

    def __missing__(self, key: str) -> str:
        r = self.rng.random  # index picks: several times faster than choice()/randint()
        if key == "order":
            v = str(10_000_000 + int(r() * 90_000_000))
        elif key == "product":
            v = PRODUCTS[int(r() * len(PRODUCTS))]
        elif key == "date":
            v = self.dates[int(r() * len(self.dates))]
        elif key == "price":
            cur = "$$$$$$$€€£"[int(r() * 10)]  # mostly a US shop
            v = f"{cur}{5 + int(r() * 1895)}.{('99', '00', '49', '95')[int(r() * 4)]}"
        elif key == "fee":
            v = f"${4 + int(r() * 46)}.{('99', '00', '49', '95')[int(r() * 4)]}"
        elif key == "days":
            v = str(2 + int(r() * 9))
        elif key == "plan":
            v = PLANS[int(r() * len(PLANS))]
        elif key == "city":
            v = CITIES[int(r() * len(CITIES))]
        elif key == "carrier":
            v = CARRIERS[int(r() * len(CARRIERS))]
        elif key == "ticket":
            v = f"TKT-{10000 + int(r() * 90000)}"
        elif key == "tracking":
            rng = self.rng
            v = f"1Z{''.join(rng.choices(_ALNUM[:26], k=6))}{_digits(rng, 10)}"
        elif key == "version":
            v = f"{1 + int(r() * 5)}.{int(r() * 21)}.{int(r() * 10)}"
        elif key == "last4":
            v = LAST4[int(r() * len(LAST4))]
        elif key == "promo":
            v = PROMOS[int(r() * len(PROMOS))]
        elif key == "error":
            v = ERRORS[int(r() * len(ERRORS))]
        elif key == "exp_m":
            v = str(1 + int(r() * 9))
        elif key == "exp_y":
            v = str(7 + int(r() * 3))
        elif key == "cvv":
            v = f"{int(r() * 1000):03d}"
        else:
            v = _PII_MAKERS[key](self.rng)
        self[key] = v
        return v


# ---------------------------------------------------------------------------------------------
# The record generator.
# ---------------------------------------------------------------------------------------------


_utf8_encode = json.JSONEncoder(ensure_ascii=False).encode


def json_line(obj: Any) -> bytes:
    # The default (ASCII) encoder is the fastest; records with non-ASCII text are re-encoded so
    # that the files carry real UTF-8, as most producers write it.
    text = json.dumps(obj)
    if "\\u" in text:
        text = _utf8_encode(obj)
    return (text + "\n").encode("utf-8")


class RecordGenerator:
    """Draws every record from one seeded RNG: the same seed and call order give the same bytes."""

    def __init__(self, rng: random.Random, n: int, start: datetime, days: int) -> None:
        self.rng = rng
        self.total_us = days * DAY_US
        base = start.replace(minute=0, second=0, microsecond=0)
        self.base = base
        self.shift_us = (start - base) // timedelta(microseconds=1)
        self.hour_prefix = [
            (base + timedelta(hours=h)).strftime("%Y-%m-%dT%H:") for h in range(days * 24 + 2)
        ]
        self.days = days
        self.hour_cum = []
        acc = 0
        for w in HOURLY:
            acc += w
            self.hour_cum.append(acc)
        self.dates = tuple(
            (start + timedelta(days=d)).strftime(fmt)
            for d in range(-60, days + 20, 3)
            for fmt in ("%Y-%m-%d", "%b %d", "%B %d, %Y", "%m/%d/%Y")
        )
        # Lognormal draws are slow in pure Python; sample tables once and index into them.
        self.latencies = tuple(int(rng.lognormvariate(6.7, 0.45)) for _ in range(4096))
        self.delays_us = tuple(int(rng.lognormvariate(3.5, 1.3) * SECOND_US) for _ in range(4096))
        self.r = rng.random
        self.seq = 0
        self.n_users = max(20, n // 6)
        self.sessions: dict[int, str] = {}
        self.recent: deque[str] = deque(maxlen=64)
        self.heavy = [f"u_{900_000 + k}" for k in range(3)] + ["power.user@example.com"]

    # -- ids and time -------------------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        # A running sequence makes every id unique; the random part makes it look like a UUID.
        self.seq += 1
        h = "%024x%08x" % (self.rng.getrandbits(96), self.seq)  # noqa: UP031 - faster here
        return f"{prefix}{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def user_id(self, k: int) -> str:
        nf, nl = len(FIRST_NAMES), len(LAST_NAMES)
        if k % 10 < 3:  # real apps often key users by email
            first, last = FIRST_NAMES[k % nf], LAST_NAMES[(k // nf) % nl]
            n = k // (nf * nl)
            return f"{first}.{last}{n or ''}@{EMAIL_DOMAINS[k % len(EMAIL_DOMAINS)]}"
        return f"u_{k}"

    def rand_time(self) -> int:
        r = self.r
        hour = bisect(self.hour_cum, r() * self.hour_cum[-1])
        return int(r() * self.days) * DAY_US + hour * HOUR_US + int(r() * HOUR_US)

    def ts(self, off_us: int) -> str:
        # Clamp into the window on a whole millisecond, so that truncating to milliseconds
        # never moves an event before the one it follows.
        off_us = min(max(off_us, 0), self.total_us - 1000)
        a = self.shift_us + off_us
        h, r = divmod(a, HOUR_US)
        m, r = divmod(r, 60 * SECOND_US)
        s, us = divmod(r, SECOND_US)
        style = self.r()
        if style < 0.85:
            return f"{self.hour_prefix[h]}{m:02d}:{s:02d}.{us:06d}+00:00"
        if style < 0.96:
            return f"{self.hour_prefix[h]}{m:02d}:{s:02d}.{us // 1000:03d}Z"
        # Some producers stamp local time with an offset; same instant.
        dt = (self.base + timedelta(microseconds=a)).astimezone(self.rng.choice(TZ_OFFSETS))
        return dt.isoformat(timespec="milliseconds")

    # -- text ---------------------------------------------------------------------------------

    def slots(self) -> _Slots:
        return _Slots(self.rng, self.dates)

    def pii_sentence(self, slots: _Slots) -> str:
        return self.rng.choice(PII_PROMPT)[1].format_map(slots)

    def user_text(self, topic: str, slots: _Slots) -> tuple[str, bool]:
        r = self.r
        x = r()
        if x < 0.06:  # the same FAQ asked verbatim by many users
            text = FAQ[int(r() * len(FAQ))]
        elif x < 0.09:  # ... or nearly verbatim
            text = FAQ[int(r() * len(FAQ))]
            v = r()
            if v < 0.3:
                text = text.lower()
            elif v < 0.6:
                text = text.rstrip("?")
            elif v < 0.8:
                text = text.replace("?", "??")
            else:
                text = "hi " + text[0].lower() + text[1:]
        else:
            tpls = TOPICS[topic][0]
            text = tpls[int(r() * len(tpls))].format_map(slots)
            if r() < 0.5:
                text = PROMPT_PREFIXES[int(r() * len(PROMPT_PREFIXES))] + text
            if r() < 0.5:
                text += PROMPT_SUFFIXES[int(r() * len(PROMPT_SUFFIXES))]
        x = r()
        if x < 0.10:
            pii = self.pii_sentence(slots)
            text = f"{pii} {text}" if r() < 0.3 else f"{text} {pii}"
        elif x < 0.14:
            text = f"{text} {LOOKALIKES[int(r() * len(LOOKALIKES))].format_map(slots)}"
        if r() < 0.02:
            text += f"\n\n-- {SIGNATURES[int(r() * len(SIGNATURES))]}"
        return text, x < 0.10

    def response_sentences(self, topic: str, slots: _Slots, pii_in_prompt: bool) -> list[str]:
        r = self.r
        body = TOPICS[topic][1]
        nb = len(body)
        out = [OPENERS[int(r() * len(OPENERS))]] if r() < 0.6 else []
        # 1-3 distinct body sentences in a random order
        a = int(r() * nb)
        out.append(body[a].format_map(slots))
        x = r()
        if x < 0.67:
            b = (a + 1 + int(r() * (nb - 1))) % nb
            out.append(body[b].format_map(slots))
            if x < 0.33:
                c = (b + 1 + int(r() * (nb - 1))) % nb
                if c != a:
                    out.append(body[c].format_map(slots))
        if pii_in_prompt and r() < 0.5:  # the assistant repeats what the user disclosed
            echo = [t for key, t in PII_RESPONSE if key in slots]
            if echo:
                out.append(echo[int(r() * len(echo))].format_map(slots))
        elif r() < 0.05:
            out.append(PII_RESPONSE[int(r() * len(PII_RESPONSE))][1].format_map(slots))
        if r() < 0.5:
            out.append(CLOSERS[int(r() * len(CLOSERS))])
        return out

    # -- records ------------------------------------------------------------------------------

    def interaction(
        self, off_us: int, user: str | None, session: str | None
    ) -> tuple[dict[str, Any], list[str], str, bool]:
        """Returns (record, response sentences, topic, is_injection)."""
        rng = self.rng
        r = self.r
        slots = _Slots(rng, self.dates)
        topic = TOPIC_NAMES[bisect(_TOPIC_CUM, r() * _TOPIC_CUM[-1])]
        injection = r() < 0.004
        rec: dict[str, Any] = {"request_id": self.new_id("req_"), "ts": self.ts(off_us)}
        if user is not None:
            rec["user_id"] = user
        if session is not None:
            rec["session_id"] = session
        frac = off_us / self.total_us
        v = r()
        if v < 0.08 * (1 - frac):
            model = MODEL_VERSIONS[0]
        elif v < min(0.95, 0.15 + frac):  # the new version rolls out over the window
            model = MODEL_VERSIONS[2]
        else:
            model = MODEL_VERSIONS[1]
        rec["model_version"] = model
        if injection:
            rec["prompt"] = rng.choice(INJECTIONS).format_map(slots)
            sentences = [rng.choice(INJECTION_RESPONSES).format_map(slots)]
        elif r() < 0.7:
            rec["prompt"], pii = self.user_text(topic, slots)
            sentences = self.response_sentences(topic, slots, pii)
        else:
            rec["messages"] = self.chat(topic, slots)
            sentences = self.response_sentences(topic, slots, False)
        rec["response"] = " ".join(sentences)
        if r() < 0.97:
            rec["latency_ms"] = self.latencies[int(r() * 4096)]
        if r() < 0.95:
            # ~8% low-confidence answers below -3.0, the rest between -2.5 and -0.1
            lp = -3.0 - r() * 4.0 if r() < 0.08 else -0.1 - r() * 2.4
            rec["response_logprob"] = round(lp, 4)
        if r() < 0.9:
            meta = {"app": "support-bot", "locale": LOCALES[int(r() * len(LOCALES))]}
            if r() < 0.6:
                meta["channel"] = CHANNELS[int(r() * len(CHANNELS))]
            if r() < 0.2:
                meta["ab_bucket"] = "A" if r() < 0.5 else "B"
            rec["metadata"] = meta
        if r() < 0.03:  # producers add fields the contract doesn't know yet
            name, values = rng.choice(EXTRA_FIELDS)
            rec[name] = rng.choice(values) if values else f"{rng.getrandbits(64):016x}"
        return rec, sentences, topic, injection

    def chat(self, topic: str, slots: _Slots) -> list[dict[str, str]]:
        rng = self.rng
        msgs = []
        if rng.random() < 0.85:
            msgs.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
        msgs.append({"role": "user", "content": self.user_text(topic, slots)[0]})
        for _ in range(int(rng.random() * 3)):
            if rng.random() < 0.15:  # an order lookup tool call in the middle
                msgs.append({"role": "assistant", "content": "Let me look that up for you."})
                tool = {
                    "order_id": slots["order"],
                    "status": rng.choice(TOOL_STATUSES),
                    "carrier": slots["carrier"],
                    "eta": slots["date"],
                }
                msgs.append({"role": "tool", "content": json.dumps(tool)})
            answer = rng.choice(TOPICS[topic][1]).format_map(slots)
            msgs.append({"role": "assistant", "content": answer})
            msgs.append({"role": "user", "content": rng.choice(FOLLOW_UPS).format_map(slots)})
        return msgs

    def edited(self, sentences: list[str], topic: str) -> str:
        """A user's edit of an answer: mostly small-to-medium changes, some typo fixes/rewrites."""
        rng = self.rng
        out = list(sentences)
        r = rng.random()
        if r < 0.07:  # typo-level fix
            i = int(rng.random() * len(out))
            s = out[i]
            out[i] = s[:-1] + "!" if s.endswith(".") else s + "."
            return " ".join(out)
        if r < 0.14:  # full rewrite
            other = rng.choice([t for t in TOPIC_NAMES if t != topic])
            return " ".join(self.response_sentences(other, self.slots(), False)[:3])
        if rng.random() < 0.4:  # users often strip the pleasantries
            out = [s for s in out if s not in _FRAME] or out
        if r < 0.55:
            n_ops = 2 + int(rng.random() * 2)
        elif r < 0.80:
            body = [j for j, s in enumerate(out) if s not in _FRAME] or [0]
            out[rng.choice(body)] = rng.choice(EDIT_SENTENCES + TOPICS[topic][1]).format_map(
                self.slots()
            )
            n_ops = int(rng.random() * 2)
        else:
            if len(out) > 1:
                del out[int(rng.random() * len(out))]
            out.append(rng.choice(EDIT_SENTENCES))
            n_ops = 1
        body = [j for j, s in enumerate(out) if s not in _FRAME] or [0]
        for j in rng.sample(body, min(n_ops, len(body))):
            out[j] = self.tweak(out[j])
        return " ".join(out)

    def tweak(self, s: str) -> str:
        """One small wording or fact change in a sentence."""
        rng = self.rng
        op = rng.random()
        if op < 0.4:
            words = s.split(" ")
            idx = [j for j, w in enumerate(words) if w in SYNONYMS]
            if idx:
                j = rng.choice(idx)
                words[j] = SYNONYMS[words[j]]
                return " ".join(words)
        if op < 0.6:
            m = _DURATION_RE.search(s)
            if m:  # correct a number, e.g. "3 business days" -> "5 business days"
                fixed = str(int(m.group(1)) + rng.randint(1, 9))
                return s[: m.start(1)] + fixed + s[m.end(1) :]
        if op < 0.8 and s.endswith("."):
            return s[:-1] + rng.choice(EDIT_INSERTS) + "."
        cut = max(s.rfind(", "), s.rfind("; "))
        if cut > 20:  # drop a trailing clause
            return s[:cut] + "."
        return s + " " + rng.choice(EDIT_SENTENCES)

    def comment(self, kind_sign: int) -> str:
        rng = self.rng
        slots = self.slots()
        pool = (
            COMMENTS_POS if kind_sign > 0 else COMMENTS_REPORT if kind_sign < -1 else COMMENTS_NEG
        )
        text = rng.choice(pool).format_map(slots)
        if rng.random() < 0.10:
            text += " " + self.pii_sentence(slots)
        return text

    def correction(self, sentences: list[str], topic: str) -> str:
        text = self.edited(sentences, topic)
        if self.rng.random() < 0.10:
            text += " " + PII_RESPONSE[int(self.rng.random() * 3)][1].format_map(self.slots())
        return text

    def feedback(
        self,
        kind: str,
        rid: str,
        off_us: int,
        user: str | None,
        sentences: list[str],
        topic: str,
        other: str | None,
    ) -> dict[str, Any]:
        rng = self.rng
        ev: dict[str, Any] = {
            "feedback_id": self.new_id("fb_"),
            "request_id": rid,
            "ts": self.ts(off_us),
            "kind": kind,
        }
        sign = 1
        if kind == "rating":
            ev["score"] = rng.choices((1, 2, 3, 4, 5), (8, 6, 12, 30, 44))[0]
            sign = 1 if ev["score"] >= 4 else -1
        elif kind == "edit":
            ev["correction"] = self.correction(sentences, topic)
        elif kind == "comparison":
            ev["other_request_id"] = other
        elif kind == "thumbs_down":
            sign = -1
            if rng.random() < 0.3:
                ev["correction"] = self.correction(sentences, topic)
        elif kind == "report":
            sign = -2
        if rng.random() < (0.6 if kind == "report" else 0.12):
            ev["comment"] = self.comment(sign)
        if user is not None:
            ev["user_id"] = user
        if rng.random() < 0.01:
            ev["source"] = rng.choice(("widget", "email_survey", "api"))
        return ev

    def annotation(
        self, rid: str, off_us: int, sentences: list[str], topic: str, injection: bool = False
    ) -> dict[str, Any]:
        rng = self.rng
        tags, verdict = (("prompt_injection",), "bad") if injection else rng.choice(ANNOTATION_TAGS)
        ann: dict[str, Any] = {
            "annotation_id": self.new_id("ann_"),
            "request_id": rid,
            "ts": self.ts(off_us + int((1 + rng.random() * 72) * HOUR_US)),
            "operator": rng.choice(("op_alice", "op_bob")),
            "tags": list(tags),
        }
        if verdict == "bad" and rng.random() < 0.5:
            ann["correction"] = self.correction(sentences, topic)
        if rng.random() < 0.7:
            ann["verdict"] = verdict
        return ann

    # -- malformed lines ----------------------------------------------------------------------

    def bad_interaction(self, reason: str) -> bytes:
        rng = self.rng
        rec = self.interaction(self.rand_time(), self.user_id(rng.randrange(100)), None)[0]
        rec.pop("messages", None)
        rec.setdefault("prompt", "Where is my order?")
        return self.corrupt(reason, rec, "interactions")

    def bad_feedback(self, reason: str, rid: str) -> bytes:
        rng = self.rng
        kind = "rating" if reason in ("wrong_type", "bad_value") else "thumbs_up"
        ev = self.feedback(kind, rid, self.rand_time(), None, ["Thanks."], "billing", None)
        if reason == "bad_value":  # a rating outside 1..5
            ev["score"] = rng.choice((0, 6, 9, 10))
            return json_line(ev)
        if reason == "unknown_kind":
            ev["kind"] = rng.choice(("love", "heart", "meh", "thumbs_sideways"))
            return json_line(ev)
        return self.corrupt(reason, ev, "feedback")

    def corrupt(self, reason: str, rec: dict[str, Any], stream: str) -> bytes:
        rng = self.rng
        id_key = {
            "interactions": "request_id",
            "feedback": "feedback_id",
            "annotations": "annotation_id",
            "drift_events": "event_id",
        }[stream]
        if reason == "empty_line":
            return b"\n"
        if reason == "not_json":
            text = json.dumps(rec, ensure_ascii=False)
            return (text[: rng.randint(10, len(text) - 2)] + "\n").encode("utf-8")
        if reason == "not_object":
            if rng.random() < 0.5:
                return json_line([rec[id_key], rec["ts"]])
            return json_line(f"{id_key}={rec[id_key]}")
        if reason == "not_utf8":
            field = {"interactions": "prompt", "feedback": "comment"}.get(stream, "operator")
            rec[field] = f"{rec.get(field, 'Thanks')} {_BAD_BYTES}"
            if rng.random() < 0.5:  # a producer that wrote Latin-1
                bad = "Merci, café crème".encode("latin-1")
            else:  # stray binary
                bad = b"\xff\xfe garbage"
            return json_line(rec).replace(_BAD_BYTES.encode(), bad)
        if reason == "bad_ts":
            rec["ts"] = rng.choice(
                ("yesterday", "2026-11-20T10:00:00", "20/11/2026 10:00", "2026-13-45T99:00:00Z")
            )
            return json_line(rec)
        if reason == "missing_field":
            required = {
                "interactions": ("request_id", "ts", "response", "model_version", "prompt"),
                "feedback": ("request_id", "ts", "kind", "feedback_id"),
                "annotations": ("request_id", "operator", "annotation_id"),
                "drift_events": ("metric", "threshold", "event_id"),
            }[stream]
            del rec[rng.choice(required)]
            return json_line(rec)
        if reason == "wrong_type":
            if stream == "interactions":
                v = rng.random()
                if v < 0.3:
                    rec["latency_ms"] = rng.choice(("fast", "1.2s", "slow"))
                elif v < 0.5:
                    rec["request_id"] = 100_000_000 + self.seq
                elif v < 0.75:
                    del rec["prompt"]
                    rec["messages"] = "Hi, I need help with my order."
                else:
                    rec["response"] = ["I can help with that."]
            elif stream == "feedback":
                if rng.random() < 0.6:
                    rec["score"] = rng.choice(("five", "4 stars", "high"))
                else:
                    rec["request_id"] = 100_000_000 + self.seq
            elif stream == "annotations":
                rec["tags"] = "hallucination"
            else:
                rec["value"] = "high"
            return json_line(rec)
        if reason == "bad_value" and stream == "interactions":
            del rec["prompt"]
            if rng.random() < 0.5:
                rec["messages"] = [
                    {"role": "system", "content": rng.choice(SYSTEM_PROMPTS)},
                    {"role": "bot", "content": "How can I help?"},
                    {"role": "user", "content": "Where is my refund?"},
                ]
            else:  # no user turn at all
                rec["messages"] = [
                    {"role": "system", "content": rng.choice(SYSTEM_PROMPTS)},
                    {"role": "assistant", "content": "Hello! How can I help you today?"},
                ]
            return json_line(rec)
        raise ValueError(f"no recipe for {reason!r} in {stream}")
