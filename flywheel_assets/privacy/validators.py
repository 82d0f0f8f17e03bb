"""Checksum and structure validators that confirm a PII candidate found by a regex is real.

Each validator takes the matched text and returns True when it should be redacted, False when it
should stay, or a ``(start, end)`` span of the text when only that part is PII (a name followed by
a word that is not part of it).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from .gazetteer import NOT_NAME_NEXT, ambiguous, first_names, surnames

# Registered IBAN lengths by country (ISO 13616 registry). A country not listed here is accepted on
# the mod-97 checksum and the generic 15..34 length alone, so newly added countries still redact.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def _digits(text: str) -> str:
    return "".join(ch for ch in text if "0" <= ch <= "9")


def luhn_valid(digits: str) -> bool:
    """True when a string of ASCII digits passes the Luhn (mod 10) check."""
    if not digits or not digits.isascii() or not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def luhn(text: str) -> bool:
    """Luhn check on the digits of the text, ignoring spaces and dashes."""
    return luhn_valid(_digits(text))


def _card_digits_ok(digits: str, grouped: bool) -> bool:
    if not 13 <= len(digits) <= 19 or not luhn_valid(digits):
        return False
    # An unformatted run must also start like a payment network number (2-6: Mastercard, Amex,
    # Diners, JCB, Visa, Discover, UnionPay, Maestro): 13-digit epoch milliseconds and 19-digit
    # snowflake ids start with 1 and would otherwise pass Luhn one time in ten.
    return grouped or digits[0] in "23456"


def card(text: str) -> bool:
    """Payment card number: 13 to 19 digits that pass Luhn.

    A short trailing group after a separator (a CVV or expiry year typed right after the number)
    is tolerated when the number without it is a valid card, so the whole run is redacted rather
    than missed.
    """
    grouped = " " in text or "-" in text
    if _card_digits_ok(_digits(text), grouped):
        return True
    cut = max(text.rfind(" "), text.rfind("-"))
    if cut <= 0:
        return False
    head = text[:cut]
    return _card_digits_ok(_digits(head), " " in head or "-" in head)


def iban(text: str) -> bool | tuple[int, int]:
    """IBAN: country code, check digits, registered length and the ISO 7064 mod-97 checksum.

    Upper case is the printed form; one typed in lower (or mixed) case must also come from a
    registered country, since lower-case words followed by digits are far more common in text.
    The pattern matches case-insensitively, so a candidate may run on into the next word
    ("at18 0000 ... 0000 hello"): then the leading groups that make a valid IBAN of the
    registered length are the hit.
    """
    if _iban_ok(text):
        return True
    expected = IBAN_LENGTHS.get(text[:2].upper())
    head = text
    while expected is not None and " " in head:
        head = head[: head.rfind(" ")]
        if len(head.replace(" ", "")) == expected:
            return (0, len(head)) if _iban_ok(head) else False
    return False


def _iban_ok(text: str) -> bool:
    compact = text.replace(" ", "")
    typed = not compact.isupper()
    compact = compact.upper()
    if not 15 <= len(compact) <= 34 or not compact.isascii() or not compact.isalnum():
        return False
    country, check = compact[:2], compact[2:4]
    if not country.isalpha() or not check.isdigit():
        return False
    expected = IBAN_LENGTHS.get(country)
    if (expected is None and typed) or (expected is not None and len(compact) != expected):
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def ssn(text: str) -> bool:
    """US SSN: area not 000, 666 or 9xx; group not 00; serial not 0000."""
    digits = _digits(text)
    if len(digits) != 9:
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def ipv4(text: str) -> bool:
    """Dotted quad with exactly four parts, each 0..255."""
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts)


def ipv6(text: str) -> bool:
    """A parseable IPv6 address with at least two groups and five hex digits, or ``::`` and one
    group holding a digit (``::1``, ``::2``).

    The rule keeps short scope-operator look-alikes ("a::b", "ab::cd", "::add") out while every
    routable address and the loopback pass; the pattern for the one-group form also wants a
    boundary before it, so a slice such as ``a[::2]`` stays.
    """
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    groups = [g for g in text.replace(".", ":").split(":") if g]
    if len(groups) == 1 and text.startswith("::"):
        return any(ch.isdigit() for ch in groups[0])
    return len(groups) >= 2 and sum(len(g) for g in groups) >= 5


def phone(text: str) -> bool:
    """International number: E.164 allows 8..15 digits including the country code."""
    return 8 <= len(_digits(text)) <= 15


# UK National Insurance prefixes that are never issued (HMRC).
_NINO_BAD_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def nino(text: str) -> bool:
    """UK National Insurance number: two prefix letters (not an unissued pair), six digits, A-D."""
    compact = text.replace(" ", "").upper()
    return (
        len(compact) == 9
        and compact[:2].isalpha()
        and compact[:2] not in _NINO_BAD_PREFIXES
        and compact[2:8].isdigit()
        and compact[8] in "ABCD"
    )


_TITLES = frozenset({"Mr", "Mrs", "Ms", "Mx", "Miss", "Dr", "Prof", "Sir", "Madam"})
_TOKEN = re.compile(r"\S+")


def person(text: str) -> tuple[int, int] | bool:
    """The span of a person's name at the start of a run of capitalised words, or False.

    The first word must be a gazetteer given name (a title such as "Dr." lets a surname start the
    name); an ambiguous one ("Paris", "Delta", "May") needs a known surname after it. A product or
    place word right after the first name ("Delta Lake", "Apple Pay", "Jordan Airport") means the
    words are not a name at all; later words belong to the name until such a word.
    """
    tokens = [(m.start(), m.end(), m.group().rstrip(".")) for m in _TOKEN.finditer(text)]
    if not tokens:
        return False
    first, last, unsure = first_names(), surnames(), ambiguous()
    titled = tokens[0][2] in _TITLES
    if titled:
        tokens = tokens[1:]
        if not tokens or tokens[0][2] in NOT_NAME_NEXT:
            return False
        word = tokens[0][2]
        if word not in last and (word not in first or word in unsure):
            return False
    else:
        word = tokens[0][2]
        nxt = tokens[1][2] if len(tokens) > 1 else None
        if word not in first or nxt in NOT_NAME_NEXT:
            return False
        if word in unsure and (nxt is None or nxt not in last):
            return False
    end = tokens[0][1]
    for i in range(1, len(tokens)):
        _, stop, word = tokens[i]
        if word in NOT_NAME_NEXT or (len(word) > 1 and word.isupper()):
            break
        if len(word) == 1 and i + 1 == len(tokens):
            break  # a trailing initial belongs to what follows, not to the name
        end = stop
    return 0, end


VALIDATORS: dict[str, Callable[[str], bool | tuple[int, int]]] = {
    "luhn": luhn,
    "card": card,
    "iban": iban,
    "ssn": ssn,
    "ipv4": ipv4,
    "ipv6": ipv6,
    "phone": phone,
    "nino": nino,
    "person": person,
}
