"""RE2 patterns for the PII kinds that need structure or context: street addresses, person names,
government ids, dates of birth and unformatted phone numbers.

Every pattern is RE2 syntax that Python's ``re`` (in ASCII mode) reads the same way; the detector
in ``pii.py`` turns them into rules. Letters outside ASCII are written as explicit Latin-1 ranges
because ``\\w`` and ``\\b`` are ASCII-only in both engines. A ``(?P<value>...)`` group is what is
replaced; the context around it stays.
"""

from __future__ import annotations

from .gazetteer import NAME_WORD

__all__ = [
    "ADDRESS_EU",
    "ADDRESS_PO_BOX",
    "ADDRESS_ROMANCE",
    "ADDRESS_STREET_FIRST",
    "ADDRESS_US_UK",
    "DOB",
    "DRIVER_LICENSE",
    "IPV6_ONE_GROUP",
    "NATIONAL_INSURANCE",
    "PASSPORT",
    "PERSON_CONTEXT",
    "PERSON_TITLE",
    "PHONE_IN_CONTEXT",
]

_UP = "A-ZÀ-ÖØ-Þ"
_LOW = "a-zß-öø-ÿ"
_CAP = f"[{_UP}][{_LOW}]+"

# --- Street addresses ----------------------------------------------------------------------------
# A street line: house number, one to four capitalised words (or ordinals, or a direction letter),
# a street suffix, then optionally a direction, a unit, a city (after a comma), a state or county,
# a ZIP or postcode and a country. The whole line is one hit.
# Abbreviations may carry their period ("St."); a full word's period ends the sentence.
_STREET_SUFFIX = (
    r"(?:(?:Street|Avenue|Road|Boulevard|Lane|Drive|Court|Place|Square|Terrace|Way|Close"
    r"|Crescent|Parkway|Highway|Circle|Loop|Row|Mews|Gardens|Grove|Walk|Trail|Alley|Plaza)"
    r"|(?:St|Ave|Rd|Blvd|Ln|Dr|Ct|Pl|Sq|Ter|Cres|Pkwy|Hwy|Cir)\.?)"
)
_HOUSE = r"\d{1,5}[A-Za-z]?(?:-\d{1,5}[A-Za-z]?)?"
_UNIT = (
    r"(?:(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|Room|Rm|Bldg|Building)\.? ?#?|#[ ]?)"
    r"[A-Za-z0-9-]{1,6}"
)
_STREET_WORD = rf"(?:{_CAP}(?:['’]s)?|[A-Z]\.?|\d{{1,3}}(?:st|nd|rd|th))"
_CITY = rf"{_CAP}(?:[ -]{_CAP}){{0,2}}"
_ZIP = r"\d{5}(?:-\d{4})?"
_UK_POSTCODE = r"[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}"
_POSTAL = rf"(?:{_ZIP}|{_UK_POSTCODE})"
_SEP = r"(?:, ?|,?\n)"
_COUNTRY = r"(?:USA|US|UK|United Kingdom|United States|Deutschland|Germany|France|Spain|Italy)"
# After the street: ", City[, County][, ST] [ZIP]" or " [City] POSTCODE" (no comma needs a code).
_TAIL = (
    rf"(?:{_SEP}{_CITY}(?:, {_CITY})?(?:,? [A-Z]{{2}}\b)?(?:,? {_POSTAL})?(?:, {_COUNTRY})?"
    rf"| (?:{_CITY} )?(?:[A-Z]{{2}} )?{_POSTAL})?"
)
# The character after the line is consumed, not looked at (RE2 has no lookahead): a capitalised
# word right after the suffix makes it a name ("Main Street Bank"), not an address.
_END = r"(?:$|[^\w ]| [^A-Z0-9])"
ADDRESS_US_UK = (
    rf"\b(?P<value>(?:{_UNIT},? )?{_HOUSE},? (?:{_STREET_WORD} ){{1,4}}{_STREET_SUFFIX}"
    rf"(?: (?:NW|NE|SW|SE|N|S|E|W)\b)?(?:,? {_UNIT})?{_TAIL}){_END}"
)
ADDRESS_PO_BOX = rf"\b(?P<value>(?:P\.? ?O\.?|Post Office) Box \d{{1,6}}{_TAIL}){_END}"
# German, Austrian, Swiss and Dutch: the street name carries its suffix and the number follows.
_EU_POSTAL = r"(?:\d{4}-\d{3}|\d{4} ?[A-Z]{2}|\d{4,5})"
_EU_TAIL = rf"(?:{_SEP}{_EU_POSTAL} {_CITY})?"
_GERMANIC = (
    rf"(?:{_CAP} )?[{_UP}][{_LOW}]*(?:straße|strasse|str\.|gasse|weg|platz|allee|straat|laan"
    rf"|gracht|plein|kade|singel|steeg)|{_CAP} (?:Straße|Strasse|Weg|Platz|Allee|Gasse)"
)
ADDRESS_EU = rf"\b(?P<value>(?:{_GERMANIC}) \d{{1,4}}[a-z]?(?:-\d{{1,4}}[a-z]?)?{_EU_TAIL}){_END}"
# French: number first, a lower-case street type, particles, a capitalised name.
_FR_PARTICLE = r"(?:(?:de la|de l['’]|du|des|de|d['’]|la|le|les) ?)?"
ADDRESS_STREET_FIRST = (
    rf"\b(?P<value>\d{{1,4}}(?: ?(?:bis|ter))?,? (?:[Rr]ue|[Aa]venue|av\.|[Bb]oulevard|bd|[Pp]lace"
    rf"|[Aa]llée|[Ii]mpasse|[Cc]hemin|[Qq]uai|[Rr]oute) {_FR_PARTICLE}[{_UP}][{_LOW}'’-]*"
    rf"(?: [{_UP}][{_LOW}'’-]*){{0,3}}{_EU_TAIL}){_END}"
)
# Spanish, Catalan, Portuguese and Italian: the street type first, the number after the name.
_ROMANCE_PARTICLE = (
    r"(?:(?:de la|de los|de las|del|de|da|do|dos|das|della|delle|dei|degli|di|dell['’]) ?)?"
)
ADDRESS_ROMANCE = (
    rf"\b(?P<value>(?:Calle|C/|Avenida|Avda\.|Plaza|Paseo|Carrer|Rua|Via|Viale|Piazza|Piazzale"
    rf"|Corso|Largo|Vicolo|Travessa) {_ROMANCE_PARTICLE}{_CAP}(?: {_CAP}){{0,2}},? (?:n\.? ?º? ?)?"
    rf"\d{{1,4}}[A-Za-z]?{_EU_TAIL}){_END}"
)

# --- Person names --------------------------------------------------------------------------------
# Capitalised words after a phrase people write before a name; the ``person`` validator decides
# from the gazetteer which of them (if any) are the name.
_TITLE = r"(?:Mr|Mrs|Ms|Mx|Miss|Dr|Prof|Sir|Madam)\.?"
# Later words may be acronyms so that the validator sees "Jordan UI" and keeps both words.
_NAME = rf"(?:{_TITLE} )?{NAME_WORD}(?: (?:[A-Z]\. )?(?:{NAME_WORD}|[A-Z]{{2,5}}\b)){{0,2}}"
_PERSON_CUE = (
    r"(?i:\b(?:my name is|my name's|name is|name:|i am|i'm|this is|it's|call me|hi|hello|hey"
    r"|dear|greetings|thanks|thank you|many thanks|cheers|regards|best regards|kind regards"
    r"|warm regards|best|sincerely|yours truly|yours|ask|call|tell|email|text|ping|message"
    r"|contact|cc|account holder|account name|cardholder|card holder|name on the card|signed"
    r"|attn|attention|spoke with|spoke to|talk to|speak to|meet|met with|patient|customer))"
)
PERSON_CONTEXT = rf"{_PERSON_CUE}[:,]?\s{{1,3}}(?P<value>{_NAME})"
PERSON_TITLE = rf"\b(?P<value>{_TITLE} {NAME_WORD}(?: {NAME_WORD})?)"

# --- Government ids and dates of birth, where their context names them --------------------------
# Up to 25 characters of filler ("number:", "no.", "is") between the cue and the value; lazy, so
# the value is the first candidate after the cue, and never across a sentence end.
_FILL = r"[^\d\n;!?]{0,25}?\b"
PASSPORT = rf"(?i:\bpassport\b){_FILL}(?P<value>[A-Z]{{0,2}}\d[A-Z0-9]{{5,8}})\b"
DRIVER_LICENSE = (
    rf"(?:(?i:\b(?:driver['’]?s?|driving)[ -]licen[cs]e\b)|\bDL\b){_FILL}"
    r"(?P<value>[A-Z]{0,6}\d[A-Z0-9-]{3,18})\b"
)
NATIONAL_INSURANCE = (
    rf"(?:(?i:\bnational insurance\b|\bnino\b)|\bNI (?:[Nn]umber|[Nn]o)\b){_FILL}"
    r"(?P<value>[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D])\b"
)
_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sept?(?:ember)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_MON = r"(?:0?[1-9]|1[0-2])"
_YEAR = r"(?:19|20)\d{2}"
_ORD = r"(?:st|nd|rd|th)?"
_DATE = (
    rf"(?:{_YEAR}[-/.]{_MON}[-/.]{_DAY}|{_DAY}[/.-]{_DAY}[/.-](?:{_YEAR}|\d{{2}})"
    rf"|{_MONTH} {_DAY}{_ORD},? {_YEAR}|{_DAY}{_ORD}(?: of)? {_MONTH},? {_YEAR})"
)
DOB = (
    # "birthday" only as "birthday is" / "birthday:", so "birthday sale ends <date>" stays.
    r"(?i:\b(?:date of birth|birth ?date|dob|born)\b|\bbirthday(?:\s+is|\s*:)|\bd\.o\.b\.)"
    rf"[^\d\n;!?]{{0,20}}?\b(?P<value>{_DATE})\b"
)

# --- Known misses of the plain formats ------------------------------------------------------------
# Ten digits with no separators are a US phone number only when a phone cue is near.
PHONE_IN_CONTEXT = (
    r"(?i:\b(?:phone|cell|mobile|tel|telephone|call|text|sms|whatsapp|fax|reach me|ring me"
    r"|my number|contact number)\b)[^\d\n]{0,30}?(?P<value>(?:\+?1[ .-]?)?[2-9]\d{9})\b"
)
# The loopback and other one-group compressed IPv6 addresses ("::1", "[::1]:8080"), after a space,
# a quote, "=", "(", "/" or a bracket that itself follows one (so a slice "a[::2]" stays).
IPV6_ONE_GROUP = r"(?:^|[\s(\"'=,;/>])\[?(?P<value>::[0-9A-Fa-f]{1,4})(?:$|[^\w:.(]|\.(?:$|\s))"
