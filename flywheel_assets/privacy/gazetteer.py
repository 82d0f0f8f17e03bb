"""First-name and surname gazetteer for person-name detection, built from Faker's locale lists.

Faker (a maintained PyPI package) ships curated given names and surnames for some 80 locales; the
Latin-script ones become two frozen sets here, loaded once on first use and never fetched at run
time. Words that are more often places, products or ordinary words than names ("Delta", "Paris",
"May") are ambiguous: they count as a first name only when a known surname follows.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from functools import cache

__all__ = ["AMBIGUOUS", "NAME_WORD", "NOT_NAME_NEXT", "ambiguous", "first_names", "surnames"]

# One capitalised name word: O'Brien, McDonald, Jean-Luc, José, Müller (Latin-1 letters only, so
# Python's ASCII-mode re and RE2 read it the same way).
NAME_WORD = r"(?:O['’]|Mc|Mac|D['’])?[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]+(?:-[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]+)?"
_NAME_WORD_RE = re.compile(NAME_WORD + r"\Z")


# Capitalised words that, right after a first name, make the pair a product, place or organisation
# ("Delta Lake", "Apple Pay", "Dagster UI", "Jordan Airport"), so neither word is redacted.
def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


NOT_NAME_NEXT = _words(
    """
    Lake Pay UI Cloud Airlines Airways Air Bank Street Road Avenue Studio Code Labs Lab Inc Ltd LLC
    Corp Team Teams Support Store App Apps Hub Pro Max Plus Mini Edition API SDK CLI Office Group
    Hotel Airport Station Park Center Centre University College School Hospital Museum Club Cafe
    Restaurant Foundation Society Library Mall Bridge River Valley Beach Island Mountain Express
    Motors Energy Health Insurance Capital Partners Systems Software Technologies Analytics Data
    AI ML Engine Platform Drive Chat Mail Maps Music TV Prime Video Wallet Card Credit Lines Rail
    Bus Day Days Week Airline Server Database DB Core Web Online Shop Market Markets Airport Desk
    Service Services Cup League Festival Conference Summit Network Cluster Console Dashboard
    Portal Agent Assistant Bot Docs Wiki Project Release Version Update Edition Series Model
    """
)

# Given names in the gazetteer that are also months, days, places, products or everyday words.
AMBIGUOUS = _words(
    """
    January February March April May June July August September October November December
    Monday Tuesday Wednesday Thursday Friday Saturday Sunday Spring Summer Autumn Winter
    Will Can Hope Faith Joy Grace Love Star Sky River Ocean Sugar Candy Honey Sunny Dawn Eve
    Delta Apple Amazon Safari Mac Max Chase Pepper Ruby Jade Java Python Rust Swift Go Kotlin
    Mercedes Porsche Tesla Siri Alexa Cortana Polo Golf Jetta Camry Corolla Fiesta Cherry Olive
    Paris London Berlin Madrid Rome Milan Vienna Sydney Dallas Austin Houston Phoenix Denver Boston
    Chicago Florence Victoria Sofia Adelaide Charlotte Georgia Virginia Carolina Dakota Montana
    Nevada Alabama Indiana Kentucky Tennessee Washington Jordan China India Asia Africa America
    Europe Kenya Chad Israel Lebanon Cuba Peru Chile Brazil Ireland Scotland England Wales Devon
    Orlando Cleveland Lincoln Jackson Aurora Savannah Sierra Hudson Brooklyn Memphis Troy Sedona
    Main High Park King Young Price Green Brown White Black Gray Grey Long Little Small Page Bank
    Lane Hill Banks Best Dear Hi Hello Thanks Sorry Sure Yes No Happy Ok Okay Welcome Today Team
    """
)


def _plain(words: object) -> set[str]:
    if not isinstance(words, (dict, tuple, list, set, frozenset)):
        return set()  # some providers compute names in a property
    return {w for w in words if isinstance(w, str) and _NAME_WORD_RE.match(w)}


@cache
def _load() -> tuple[frozenset[str], frozenset[str]]:
    import faker.providers.person as person

    first: set[str] = set()
    last: set[str] = set()
    for module in pkgutil.iter_modules(person.__path__):
        provider = importlib.import_module(f"{person.__name__}.{module.name}").Provider
        attrs = vars(provider)
        for attr in ("first_names", "first_names_male", "first_names_female"):
            first |= _plain(attrs.get(attr))
        for attr in ("last_names", "last_names_male", "last_names_female"):
            last |= _plain(attrs.get(attr))
    return frozenset(first), frozenset(last)


@cache
def ambiguous() -> frozenset[str]:
    """`AMBIGUOUS` plus every given name that is also a common English word ("My", "Will", "Long",
    "Hope"): Faker's English word list decides, so a capitalised "My" after "Hi," stays."""
    from faker.providers.lorem.en_US import Provider as english

    common = {w.capitalize() for w in english.word_list}
    return AMBIGUOUS | (first_names() & common)


def first_names() -> frozenset[str]:
    """Given names of every Latin-script Faker locale, ambiguous words included."""
    return _load()[0]


def surnames() -> frozenset[str]:
    """Surnames of every Latin-script Faker locale."""
    return _load()[1]
