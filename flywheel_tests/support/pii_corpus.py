"""Labelled PII corpus: positives with the values and kinds that must be redacted, and look-alike
negatives (dates, versions, prices, order numbers, checksum failures, product and place names,
street-named brands) that must stay unchanged.
"""

from __future__ import annotations

import re
from typing import NamedTuple


class Positive(NamedTuple):
    text: str
    # (value that must be gone from the output, kind it is counted as)
    hits: tuple[tuple[str, str], ...]
    # substrings that must survive, e.g. the key name in "password=..."
    keep: tuple[str, ...] = ()


class Negative(NamedTuple):
    text: str
    category: str


def leaked(original: str, value: str, redacted: str) -> list[str]:
    """Words of ``value`` (two characters or more) still in ``redacted`` beyond those the rest of
    ``original`` holds.

    Catches a partial redaction ("221B [ADDRESS], London NW1 6XE") that the absence of the whole
    value would not.
    """
    context = original.replace(value, " ", 1)
    return [
        w
        for w in set(re.findall(r"\w{2,}", value))
        if len(re.findall(rf"\b{re.escape(w)}\b", redacted))
        > len(re.findall(rf"\b{re.escape(w)}\b", context))
    ]


def _p(text: str, *hits: tuple[str, str], keep: tuple[str, ...] = ()) -> Positive:
    return Positive(text, tuple(hits), keep)


# Credential fixtures are assembled from pieces so repository secret scanners do not flag them.
# None of them is a live credential.
OPENAI_KEY = "sk-" + "abcDEF1234567890ghijKLMN5678opqr"
OPENAI_PROJECT_KEY = "sk-" + "proj-" + "Xy12Ab34Cd56Ef78Gh90Ij12Kl34Mn56Op78"
AWS_KEY = "AKIA" + "IOSFODNN7EXAMPLE"
GITHUB_PAT_CLASSIC = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
GITHUB_OAUTH = "gho_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"
GITHUB_PAT = "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"
SLACK_BOT = "xox" + "b-" + "1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
SLACK_USER = "xox" + "p-" + "9876543210-9876543210-1234567890123-0123456789abcdef0123456789abcdef"
JWT = (
    "eyJ" + "hbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJ" + "zdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
_BEGIN, _END = "-----BEGIN ", "-----END "
PEM_RSA = (
    _BEGIN + "RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA7xT3kq9vJ0Zb2mW5qL8xN4cR1sY6tU0vWzA3bC5dE7fG9hI1\n"
    "jK3lM5nO7pQ9rS1tU3vW5xY7zA9bC1dE3fG5hI7jK9lM1nO3pQ5rS7tU9vW1xY3z\n"
    "A5bC7dE9fG1hI3jK5lM7nO9pQ1rS3tU5vW7xY9zA1bC3dE5fG7hI9jK1lM3nO5p==\n"
    + _END
    + "RSA PRIVATE KEY-----"
)
PEM_PKCS8_ESCAPED = (
    _BEGIN + "PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\\n"
    "VJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZ\\n"
    + _END
    + "PRIVATE KEY-----\\n"
)
PEM_OPENSSH = (
    _BEGIN + "OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    + _END
    + "OPENSSH PRIVATE KEY-----"
)

POSITIVES: tuple[Positive, ...] = (
    # Emails
    _p("Please send the report to john.doe@example.com before Friday.",
       ("john.doe@example.com", "email")),
    _p("Contact: maria_garcia+billing@mail.example.co.uk",
       ("maria_garcia+billing@mail.example.co.uk", "email")),
    _p("CC me (j.smith@sub.example.org) on the thread.", ("j.smith@sub.example.org", "email")),
    _p("Her address is <alice.wong@example.io>, not the old one.",
       ("alice.wong@example.io", "email")),
    _p("Emails: bob@example.com, carol@example.net; dave99@example.org.",
       ("bob@example.com", "email"), ("carol@example.net", "email"),
       ("dave99@example.org", "email")),
    _p("User 'first.last-name@company-name.example' reported the bug.",
       ("first.last-name@company-name.example", "email")),
    _p("Reply to SUPPORT@EXAMPLE.COM for help.", ("SUPPORT@EXAMPLE.COM", "email")),
    _p("mailto:test.user%tag@example.travel", ("test.user%tag@example.travel", "email"),
       keep=("mailto:",)),
    # US phone numbers
    _p("Call me at (555) 123-4567 after lunch.", ("(555) 123-4567", "phone")),
    _p("My cell is 555-123-4567.", ("555-123-4567", "phone")),
    _p("Office: 555.123.4567, ext. 12", ("555.123.4567", "phone")),
    _p("Reach the desk at +1 555 123 4567 today.", ("+1 555 123 4567", "phone")),
    _p("Dial 1-555-123-4567 for support.", ("1-555-123-4567", "phone")),
    _p("Numbers: 415-555-0199 and (212) 555-0142.",
       ("415-555-0199", "phone"), ("(212) 555-0142", "phone")),
    _p("Text +1-202-555-0173 when you land.", ("+1-202-555-0173", "phone")),
    _p("Phone:(800)555-0100", ("(800)555-0100", "phone")),
    # International phone numbers (E.164)
    _p("The London office is +44 20 7946 0958.", ("+44 20 7946 0958", "phone")),
    _p("In Paris call +33 1 23 45 67 89 instead.", ("+33 1 23 45 67 89", "phone")),
    _p("Berlin: +49 30 1234567", ("+49 30 1234567", "phone")),
    _p("My Indian number is +91 98765 43210.", ("+91 98765 43210", "phone")),
    _p("Compact form +442079460958 also works.", ("+442079460958", "phone")),
    _p("Try +4420794609 58 if that fails.", ("+4420794609 58", "phone")),
    _p("Tokyo office +81 3-1234-5678, Sydney +61 2 9876 5432.",
       ("+81 3-1234-5678", "phone"), ("+61 2 9876 5432", "phone")),
    _p("Our Madrid line is +34 912 345 678.", ("+34 912 345 678", "phone")),
    # US social security numbers
    _p("My SSN is 123-45-6789.", ("123-45-6789", "ssn")),
    _p("SSN: 219-09-9999, please verify.", ("219-09-9999", "ssn")),
    _p("The form lists 512-34-1234 as the social security number.", ("512-34-1234", "ssn")),
    _p("Social: 078-05-1120", ("078-05-1120", "ssn")),
    _p("Two SSNs on file: 001-01-0001 and 665-99-9998.",
       ("001-01-0001", "ssn"), ("665-99-9998", "ssn")),
    _p("ssn 123 45 6789 (spaces)", ("123 45 6789", "ssn")),
    # Payment cards (Luhn-valid)
    _p("My card number is 4111 1111 1111 1111, expiry 12/27.", ("4111 1111 1111 1111", "card")),
    _p("Charge 5555-5555-5555-4444 for the order.", ("5555-5555-5555-4444", "card")),
    _p("Amex 3782 822463 10005 was declined.", ("3782 822463 10005", "card")),
    _p("Use 6011111111111117 for the test.", ("6011111111111117", "card")),
    _p("Visa 4222222222222 is the 13-digit test card.", ("4222222222222", "card")),
    _p("Card: 3530-1113-3330-0000", ("3530-1113-3330-0000", "card")),
    _p("Diners 3056 930902 5904", ("3056 930902 5904", "card")),
    _p("MC 2223 0031 2200 3222 on file", ("2223 0031 2200 3222", "card")),
    _p("Card 4111 1111 1111 1111 123 exp 12/26", ("4111 1111 1111 1111", "card")),
    _p("The 19-digit 4000 0000 0000 0000 006 works too.", ("4000 0000 0000 0000 006", "card")),
    _p("UnionPay 6221260000000000001!", ("6221260000000000001", "card")),
    # IBANs (mod-97 valid)
    _p("Wire to GB82 WEST 1234 5698 7654 32 by Friday.", ("GB82 WEST 1234 5698 7654 32", "iban")),
    _p("IBAN: DE89370400440532013000", ("DE89370400440532013000", "iban")),
    _p("FR14 2004 1010 0505 0001 3M02 606 is the account.",
       ("FR14 2004 1010 0505 0001 3M02 606", "iban")),
    _p("Pay NL91ABNA0417164300 now.", ("NL91ABNA0417164300", "iban")),
    _p("Spanish account ES91 2100 0418 4502 0005 1332.",
       ("ES91 2100 0418 4502 0005 1332", "iban")),
    _p("Swiss CH93 0076 2011 6238 5295 7 and Norway NO93 8601 1117 947",
       ("CH93 0076 2011 6238 5295 7", "iban"), ("NO93 8601 1117 947", "iban")),
    _p("BE68539007547034, thanks", ("BE68539007547034", "iban")),
    _p("Italian IBAN IT60X0542811101000000123456 on the invoice",
       ("IT60X0542811101000000123456", "iban")),
    # IPv4
    _p("The server at 192.168.1.1 is down.", ("192.168.1.1", "ip")),
    _p("Blocked IP: 10.0.0.1, 172.16.254.1", ("10.0.0.1", "ip"), ("172.16.254.1", "ip")),
    _p("DNS 8.8.8.8 resolves fine.", ("8.8.8.8", "ip")),
    _p("Broadcast 255.255.255.255 and 0.0.0.0", ("255.255.255.255", "ip"), ("0.0.0.0", "ip")),
    _p("Connect to 203.0.113.42:8080 please.", ("203.0.113.42", "ip"), keep=(":8080",)),
    _p("Traffic from 198.51.100.7/24 spiked.", ("198.51.100.7", "ip")),
    # IPv6
    _p("IPv6 2001:db8::1 responds.", ("2001:db8::1", "ip")),
    _p("Link-local fe80::1ff:fe23:4567:890a on eth0.", ("fe80::1ff:fe23:4567:890a", "ip")),
    _p("Full form 2001:0db8:85a3:0000:0000:8a2e:0370:7334 too.",
       ("2001:0db8:85a3:0000:0000:8a2e:0370:7334", "ip")),
    _p("Mapped ::ffff:192.168.1.1 address.", ("::ffff:192.168.1.1", "ip")),
    _p("Prefix 2001:db8:: is reserved.", ("2001:db8::", "ip")),
    _p("[2001:db8:85a3::8a2e:370:7334]:443 is listening.",
       ("2001:db8:85a3::8a2e:370:7334", "ip"), keep=(":443",)),
    # MAC addresses
    _p("Device MAC 00:1A:2B:3C:4D:5E joined.", ("00:1A:2B:3C:4D:5E", "mac")),
    _p("mac=aa:bb:cc:dd:ee:ff", ("aa:bb:cc:dd:ee:ff", "mac"), keep=("mac=",)),
    _p("Adapter 01-23-45-67-89-AB.", ("01-23-45-67-89-AB", "mac")),
    _p("Two NICs: de:ad:be:ef:00:01 and 3c-22-fb-11-22-33",
       ("de:ad:be:ef:00:01", "mac"), ("3c-22-fb-11-22-33", "mac")),
    # API keys, tokens and private keys
    _p(f"My key is {OPENAI_KEY}, keep it safe.", (OPENAI_KEY, "secret")),
    _p(f"OPENAI_API_KEY={OPENAI_PROJECT_KEY}", (OPENAI_PROJECT_KEY, "secret"),
       keep=("OPENAI_API_KEY=",)),
    _p(f"aws access key {AWS_KEY} leaked", (AWS_KEY, "secret")),
    _p(f"The CI uses {GITHUB_PAT_CLASSIC} to push.", (GITHUB_PAT_CLASSIC, "secret")),
    _p(f"oauth app token {GITHUB_OAUTH}", (GITHUB_OAUTH, "secret")),
    _p(f"fine-grained PAT {GITHUB_PAT} expires soon", (GITHUB_PAT, "secret")),
    _p(f"slack bot {SLACK_BOT} and user {SLACK_USER}",
       (SLACK_BOT, "secret"), (SLACK_USER, "secret")),
    _p(f"Authorization: Bearer {JWT}", (JWT, "secret"), keep=("Authorization: Bearer ",)),
    _p(f"the session cookie held {JWT} for an hour", (JWT, "secret")),
    _p(f"Here is my key:\n{PEM_RSA}\nplease rotate it", (PEM_RSA, "secret"),
       keep=("please rotate it",)),
    _p(f'{{"type": "service_account", "private_key": "{PEM_PKCS8_ESCAPED}"}}',
       (PEM_PKCS8_ESCAPED, "secret"), keep=('"private_key": "',)),
    _p(f"id_ed25519:\n{PEM_OPENSSH}", (PEM_OPENSSH, "secret")),
    _p("password=hunter22", ("hunter22", "secret"), keep=("password=",)),
    _p("DB_PASSWORD: Sup3r$ecret!", ("Sup3r$ecret!", "secret"), keep=("DB_PASSWORD:",)),
    _p('{"api_key": "a1b2c3d4e5f6"}', ("a1b2c3d4e5f6", "secret"), keep=('"api_key": "',)),
    _p("secret=correcthorsebatterystaple", ("correcthorsebatterystaple", "secret"),
       keep=("secret=",)),
    _p("token: 9f8e7d6c5b4a", ("9f8e7d6c5b4a", "secret"), keep=("token:",)),
    _p("client_secret = 'xyzzy-plugh-42'", ("xyzzy-plugh-42", "secret"),
       keep=("client_secret = '",)),
    _p("curl -H 'Authorization: Bearer abcdef0123456789abcdef' https://api.example.com",
       ("abcdef0123456789abcdef", "secret"), keep=("Bearer ", "https://api.example.com")),
    _p("mysql --password hunter22 -u root", ("hunter22", "secret"), keep=("--password",)),
    _p("Authorization: Basic dXNlcjpwYXNzd29yZA==", ("dXNlcjpwYXNzd29yZA==", "secret"),
       keep=("Basic",)),
    _p("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
       ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "secret"),
       keep=("aws_secret_access_key = ",)),
    _p("export GITHUB_TOKEN=abc123secretvalue", ("abc123secretvalue", "secret"),
       keep=("GITHUB_TOKEN=",)),
    _p('{"passphrase": "correct horse battery staple", "user": "kim"}',
       ("correct horse battery staple", "secret"), keep=('"passphrase": "', '"user": "kim"')),
    _p("Server=db01;Uid=sa;Password=Secr3t!;Database=orders",
       ("Secr3t!", "secret"), keep=("Password=", ";Database=orders")),
    # Credentials and tokens inside URLs
    _p("Clone https://alice:s3cret@git.example.com/repo.git",
       ("alice:s3cret", "url_credentials"), keep=("https://", "@git.example.com/repo.git")),
    _p("postgres://admin:pa55w0rd@db.internal:5432/app",
       ("admin:pa55w0rd", "url_credentials"), keep=("@db.internal:5432/app",)),
    _p("ftp://user:pass@ftp.example.com/file.txt", ("user:pass", "url_credentials")),
    _p("Callback https://app.example.com/cb?token=abc123def456&state=ok",
       ("abc123def456", "url_credentials"), keep=("?token=", "&state=ok")),
    _p("GET https://api.example.com/v1/data?api_key=ZXCV1234asdf HTTP/1.1",
       ("ZXCV1234asdf", "url_credentials"), keep=("api_key=",)),
    _p("redirect to https://example.com/#access_token=ya29.a0AfH6SM&expires_in=3600",
       ("ya29.a0AfH6SM", "url_credentials"), keep=("expires_in=3600",)),
    _p("mongodb://root:example@mongo:27017/ is the dev database",
       ("root:example", "url_credentials")),
    _p("redis://:topsecret@cache:6379/0", (":topsecret", "url_credentials")),
    # Several kinds in one row
    _p("Contact john@example.com or 555-123-4567.",
       ("john@example.com", "email"), ("555-123-4567", "phone")),
    _p("Pay with 4111111111111111 from 10.1.2.3", ("4111111111111111", "card"),
       ("10.1.2.3", "ip")),
    _p("Send $50 to GB82WEST12345698765432 and email bob@example.org",
       ("GB82WEST12345698765432", "iban"), ("bob@example.org", "email"), keep=("$50",)),
    _p("SSN 123-45-6789, phone (555) 123-4567, MAC 00:1a:2b:3c:4d:5e",
       ("123-45-6789", "ssn"), ("(555) 123-4567", "phone"), ("00:1a:2b:3c:4d:5e", "mac")),
    _p("https://bob:hunter2@example.com and bob@example.com",
       ("bob:hunter2", "url_credentials"), ("bob@example.com", "email")),
    # Street addresses: the whole line (number, street, unit, city, state or county, postcode)
    _p("Ship it to 221B Baker Street, London NW1 6XE please.",
       ("221B Baker Street, London NW1 6XE", "address"), keep=("Ship it to", "please.")),
    _p("My address is 123 Main Street, Springfield, IL 62704.",
       ("123 Main Street, Springfield, IL 62704", "address")),
    _p("Send the invoice to 1600 Pennsylvania Avenue NW, Washington, DC 20500 by Monday.",
       ("1600 Pennsylvania Avenue NW, Washington, DC 20500", "address"), keep=("by Monday.",)),
    _p("Deliver to 350 Fifth Avenue, Suite 3300, New York, NY 10118.",
       ("350 Fifth Avenue, Suite 3300, New York, NY 10118", "address")),
    _p("Apt 5B, 77 Massachusetts Ave, Cambridge, MA 02139 is my new place.",
       ("Apt 5B, 77 Massachusetts Ave, Cambridge, MA 02139", "address"), keep=("is my new place",)),
    _p("I moved to Flat 2, 14 High Street, Oxford OX1 4AA last month.",
       ("Flat 2, 14 High Street, Oxford OX1 4AA", "address"), keep=("last month",)),
    _p("Our return address: PO Box 1234, Austin, TX 78701",
       ("PO Box 1234, Austin, TX 78701", "address")),
    _p("The package went to 4 Privet Drive, Little Whinging, Surrey by mistake.",
       ("4 Privet Drive, Little Whinging, Surrey", "address"), keep=("by mistake",)),
    _p("Meet me at 500 W 34th St, New York, NY 10001 tomorrow.",
       ("500 W 34th St, New York, NY 10001", "address"), keep=("tomorrow",)),
    _p("Address on file:\n10 Downing Street\nLondon SW1A 2AA",
       ("10 Downing Street\nLondon SW1A 2AA", "address")),
    _p("Ship to 42 Wallaby Way, Sydney and call first.",
       ("42 Wallaby Way, Sydney", "address"), keep=("and call first",)),
    _p("I live at 742 Evergreen Terrace, Springfield.",
       ("742 Evergreen Terrace, Springfield", "address")),
    _p("Mail to 1 Infinite Loop, Cupertino, CA 95014, USA",
       ("1 Infinite Loop, Cupertino, CA 95014, USA", "address")),
    _p("Ich wohne in der Hauptstraße 5, 10115 Berlin.",
       ("Hauptstraße 5, 10115 Berlin", "address"), keep=("Ich wohne in der",)),
    _p("Lieferadresse: Berliner Straße 12a, 60311 Frankfurt",
       ("Berliner Straße 12a, 60311 Frankfurt", "address")),
    _p("Mijn adres is Kerkstraat 12, 1017 GB Amsterdam.",
       ("Kerkstraat 12, 1017 GB Amsterdam", "address")),
    _p("Envoyez-le au 12 rue de la Paix, 75002 Paris s'il vous plaît.",
       ("12 rue de la Paix, 75002 Paris", "address"), keep=("s'il vous plaît",)),
    _p("Mi dirección es Calle Mayor 10, 28013 Madrid.",
       ("Calle Mayor 10, 28013 Madrid", "address")),
    _p("Abito in Via Roma 15, 00184 Roma.", ("Via Roma 15, 00184 Roma", "address")),
    _p("A morada é Rua Augusta 100, 1100-053 Lisboa.",
       ("Rua Augusta 100, 1100-053 Lisboa", "address")),
    # Person names in the contexts people write them
    _p("My name is Maria Lopez.", ("Maria Lopez", "person"), keep=("My name is",)),
    _p("Hi, I'm James and I need a refund.", ("James", "person"), keep=("and I need a refund",)),
    _p("This is Aisha Khan from accounting.", ("Aisha Khan", "person"), keep=("from accounting",)),
    _p("Dear Mr. Smith, thank you for your letter.", ("Mr. Smith", "person"), keep=("Dear",)),
    _p("Thanks,\nOlivia", ("Olivia", "person"), keep=("Thanks,",)),
    _p("Best regards, Liam Murphy", ("Liam Murphy", "person")),
    _p("Can you ask Emma to call me back?", ("Emma", "person"), keep=("to call me back",)),
    _p("Please tell Daniel that the build is green.", ("Daniel", "person")),
    _p("Account holder: Hannah Schmidt", ("Hannah Schmidt", "person"), keep=("Account holder",)),
    _p("Hello Mateo, your order shipped.", ("Mateo", "person")),
    _p("Cheers, Ryan O'Brien", ("Ryan O'Brien", "person")),
    _p("Call Lucas tomorrow about the contract.", ("Lucas", "person"), keep=("tomorrow",)),
    _p("Dear Dr. Patel, the results are ready.", ("Dr. Patel", "person")),
    _p("Hi Anna, hi Peter!", ("Anna", "person"), ("Peter", "person")),
    _p("Cardholder: José García", ("José García", "person")),
    _p("My name is Zoë Müller and I live in Bonn.", ("Zoë Müller", "person"), keep=("Bonn",)),
    _p("Can you call Paris Hilton's agent?", ("Paris Hilton", "person"), keep=("'s agent",)),
    _p("Thank you, Grace Kim, for the quick reply.", ("Grace Kim", "person")),
    _p("I spoke with Priya Sharma about the Apple Pay refund.",
       ("Priya Sharma", "person"), keep=("Apple Pay",)),
    _p("Hey Noah, the Dagster UI is down again.", ("Noah", "person"), keep=("Dagster UI",)),
    _p("Regards,\nÉlodie Dubois\nSupport", ("Élodie Dubois", "person"), keep=("Support",)),
    _p("Please email Giulia Rossi the Delta Lake docs.",
       ("Giulia Rossi", "person"), keep=("Delta Lake",)),
    # Government ids and dates of birth, named by their context
    _p("My passport number is 533380006.", ("533380006", "passport"), keep=("passport number",)),
    _p("Passport No. X1234567, issued in Madrid.", ("X1234567", "passport")),
    _p("passport: C01X00T47 (German)", ("C01X00T47", "passport")),
    _p("Her UK passport 123456789 expires in 2030.", ("123456789", "passport"),
       keep=("expires in 2030",)),
    _p("Driver's license: D1234567", ("D1234567", "driver_license"), keep=("Driver's license",)),
    _p("My driving licence number is MORGA753116SM9IJ.", ("MORGA753116SM9IJ", "driver_license")),
    _p("DL S530-4562-1234 (Florida)", ("S530-4562-1234", "driver_license"), keep=("Florida",)),
    _p("National Insurance number: AB 12 34 56 C", ("AB 12 34 56 C", "national_insurance")),
    _p("my NI number is JG103759A, thanks", ("JG103759A", "national_insurance")),
    _p("NINO: CE123456D", ("CE123456D", "national_insurance")),
    _p("DOB: 1985-03-12", ("1985-03-12", "dob"), keep=("DOB",)),
    _p("Date of birth: 12/03/1985, place of birth: Leeds", ("12/03/1985", "dob")),
    _p("I was born on March 3, 1985 in Ohio.", ("March 3, 1985", "dob"), keep=("in Ohio",)),
    _p("Her birthday is 14 July 1990.", ("14 July 1990", "dob")),
    _p("d.o.b. 03.12.1979", ("03.12.1979", "dob")),
    # Known misses of the plain formats: unformatted US phones near a phone cue, lower-case
    # IBANs, compressed IPv6
    _p("Call me at 5551234567 tonight.", ("5551234567", "phone"), keep=("tonight",)),
    _p("My cell: 4155550199", ("4155550199", "phone")),
    _p("phone number 2125550142, extension 12", ("2125550142", "phone"), keep=("extension 12",)),
    _p("iban: gb82west12345698765432", ("gb82west12345698765432", "iban")),
    _p("de89 3704 0044 0532 0130 00 is my account", ("de89 3704 0044 0532 0130 00", "iban")),
    _p("ping ::1 to test the loopback", ("::1", "ip"), keep=("to test",)),
    _p("Listening on [::1]:8080 now", ("::1", "ip"), keep=("]:8080",)),
    _p("Multicast to ff02::1 and fe80::1 works.", ("ff02::1", "ip"), ("fe80::1", "ip")),
    # New kinds beside old ones
    _p("Hi, I'm Maria Lopez, my email is maria@example.com and I live at 12 Oak Street, Leeds.",
       ("Maria Lopez", "person"), ("maria@example.com", "email"),
       ("12 Oak Street, Leeds", "address")),
)  # fmt: skip

NEGATIVES: tuple[Negative, ...] = (
    # Dates and times
    Negative("The meeting is on 2024-01-15 at the main office.", "date"),
    Negative("Invoice dated 01/15/2024 is overdue.", "date"),
    Negative("Termin am 15.01.2024 bestätigt.", "date"),
    Negative("Published 2024/01/15, revised Jan 15, 2024.", "date"),
    Negative("The job started at 12:30:45 and ended at 13:02:10.", "time"),
    Negative("Standup is at 09:15 every day.", "time"),
    Negative("Logged at 2024-01-15T12:30:45.123Z by the worker.", "time"),
    Negative("Timestamp 2024-01-15 14:30:00 UTC", "time"),
    Negative("The ratio was 1:2:3 across groups.", "time"),
    # Versions
    Negative("Upgrade to v1.2.3 before Monday.", "version"),
    Negative("Released 1.2.3 with bug fixes.", "version"),
    Negative("The docs cover 10.0.0 and later.", "version"),
    Negative("Build v2.0.1.4 is the hotfix.", "version"),
    Negative("Package 1.2.3.4.5 has five parts.", "version"),
    Negative("Python 3.11.4 and numpy 1.26.0 are installed.", "version"),
    Negative("Tag 1.2.3-beta.4 is a pre-release.", "version"),
    Negative("The IP-looking 256.1.1.1 and 999.999.999.999 are out of range.", "version"),
    Negative("Subnet 192.168.1 is incomplete.", "version"),
    # Prices and percentages
    Negative("The total was $1,234.56 including tax.", "price"),
    Negative("It costs €99 per month.", "price"),
    Negative("Revenue hit USD 1,000,000 in Q3.", "price"),
    Negative("Accuracy improved to 45.5% from 41.2%.", "percentage"),
    Negative("Pi is roughly 3.14159 and e is 2.71828.", "number"),
    # Order, ticket and invoice numbers
    Negative("Your order #123456789 has shipped.", "order"),
    Negative("See ticket 4567-8901 for details.", "order"),
    Negative("Invoice INV-2024-000123 was paid.", "order"),
    Negative("PO-88812345 is pending approval.", "order"),
    Negative("Tracking number 1Z999AA10123456784 is in transit.", "order"),
    Negative("SKU 123-456-789 is out of stock.", "order"),
    Negative("ISBN 978-3-16-148410-0 is the second edition.", "order"),
    # Short numbers and ZIP codes
    Negative("We need 42 more chairs for room 101.", "number"),
    Negative("Mail it to San Francisco, CA 94105.", "zip"),
    Negative("The ZIP+4 is 94105-1234.", "zip"),
    Negative("Call extension 4567 or room 555.", "number"),
    Negative("The population is 1,234,567,890 people.", "number"),
    # Card look-alikes
    Negative("Paid with the card ending 1111.", "card"),
    Negative("Use the card ending in 4242 for this order.", "card"),
    Negative("The number 4111 1111 1111 1112 fails Luhn.", "card"),
    Negative("Reference 1234-5678-9012-3456 is not a card.", "card"),
    Negative("Serial 4111111111111112 is off by one.", "card"),
    Negative("Created at 1705312245123 epoch millis.", "card"),
    Negative("Snowflake id 1234567890123456789 from the API.", "card"),
    # IBAN look-alikes
    Negative("The IBAN GB83 WEST 1234 5698 7654 32 has a bad checksum.", "iban"),
    Negative("DE00370400440532013000 is not valid.", "iban"),
    Negative("Code AB12 CDEF 3456 is a voucher.", "iban"),
    # SSN look-alikes
    Negative("Area 000-12-3456 is never issued.", "ssn"),
    Negative("666-12-3456 is excluded.", "ssn"),
    Negative("900-12-3456 is an ITIN range.", "ssn"),
    Negative("Group 123-00-4567 is invalid.", "ssn"),
    Negative("Serial 123-45-0000 is invalid.", "ssn"),
    Negative("Customer number 123456789 is nine digits.", "ssn"),
    # IP and MAC look-alikes
    Negative("Use std::vector and Foo::Bar::baz in C++.", "ipv6"),
    Negative("Call std::abs or a::b here.", "ipv6"),
    Negative("UUID 123e4567-e89b-12d3-a456-426614174000 is the request id.", "ipv6"),
    Negative("The hex colour #ff00ff and sha e3b0c44298fc1c149afbf4c8996fb924.", "mac"),
    Negative("Labels aa:bb:cc mark the partial prefix.", "mac"),
    # Email look-alikes
    Negative("Ping @username in the channel.", "email"),
    Negative("Send to user@localhost for testing.", "email"),
    Negative("Write to foo at bar dot com.", "email"),
    Negative("Use the @property decorator in Python.", "email"),
    # Phone look-alikes
    Negative("Dial 123-4567 from inside the building.", "phone"),
    Negative("The team scored +5 points and 2+2=4.", "phone"),
    Negative("Scores were 12-34-56 in the last three games.", "phone"),
    # Secret look-alikes
    Negative("Set max_tokens=512 and temperature=0.7.", "secret"),
    Negative("tokenizer: gpt2 with 50257 tokens", "secret"),
    Negative("Install scikit-learn, not sk-learn.", "secret"),
    Negative("The secret to good bread is patience.", "secret"),
    Negative("Click the password reset link we sent.", "secret"),
    Negative("Token count: 1500 for this prompt.", "secret"),
    Negative("The bearer of bad news arrived.", "secret"),
    Negative("AKIA1234 is too short to be a key.", "secret"),
    Negative("password: <redacted> and token={{ vault_token }}", "secret"),
    Negative("eyJhbGci alone is not a token.", "secret"),
    # URL look-alikes
    Negative("See https://example.com/path?page=2&sort=asc for more.", "url"),
    Negative("The dev server runs on https://localhost:8080/app.", "url"),
    # Street look-alikes: street-named brands, streets without a number, place names alone
    Negative("I bank with Main Street Bank.", "address"),
    Negative("We visited 3 Main Street Bank branches.", "address"),
    Negative("Wall Street fell 2% today.", "address"),
    Negative("Baker Street is a famous station.", "address"),
    Negative("We have offices in London, Paris and Berlin.", "address"),
    Negative("The Apple Store on Fifth Avenue opens at 10.", "address"),
    Negative("Chapter 12 covers Sesame Street characters.", "address"),
    Negative("Send it via email or Slack.", "address"),
    Negative("Version 2 Road Map is out.", "address"),
    # Person look-alikes: products, places and UI words after a cue
    Negative("This is Delta Lake, the storage layer.", "person"),
    Negative("Thanks, Dagster UI shows the run.", "person"),
    Negative("Hi Team, the deploy is done.", "person"),
    Negative("I'm Sorry for the delay.", "person"),
    Negative("Ask Apple Pay support about the charge.", "person"),
    Negative("Call Delta Airlines to rebook.", "person"),
    Negative("This is London calling.", "person"),
    Negative("Hello World is the first program.", "person"),
    Negative("Dear Customer, your order shipped.", "person"),
    Negative("Thanks, Paris was lovely.", "person"),
    Negative("Tell Siri to set a timer.", "person"),
    Negative("Best Buy has it in stock.", "person"),
    Negative("Meet Jordan Airport staff at the gate.", "person"),
    Negative("This is May, the busiest month.", "person"),
    Negative("I'm Happy with the result.", "person"),
    Negative("Hi, My Business trial ends on 12/01/2026.", "person"),
    Negative("hey My payment keeps failing.", "person"),
    Negative("Thanks, Will do it tomorrow.", "person"),
    Negative("This is Long overdue.", "person"),
    Negative("Open the Dagster UI and check Apple Pay and Delta Lake.", "person"),
    # Government id and birth date look-alikes: no id after the cue, or a date with no birth cue
    Negative("The passport office opens at 9.", "passport"),
    Negative("Renew your passport before 2027.", "passport"),
    Negative("Driver's license renewal costs $35.", "driver_license"),
    Negative("The licence key is ABCD-1234-EFGH.", "driver_license"),
    Negative("National Insurance contributions rose 2% in 2024.", "national_insurance"),
    Negative("The project was born out of a hackathon.", "dob"),
    Negative("Delivery date 12/03/1985 on the invoice.", "dob"),
    Negative("Our birthday sale ends 2024-12-01.", "dob"),
    Negative("She was born in 1985.", "dob"),
    # Unformatted numbers with no phone cue, IBAN and IPv6 look-alikes
    Negative("Order number 1234567890 shipped.", "phone"),
    Negative("Ticket 2125550142 was closed.", "phone"),
    Negative("The hash ab12cd34ef56ab12cd34ef56ab12 is stored.", "iban"),
    Negative("Reverse with s[::-1] in Python.", "ipv6"),
    Negative("Every other item: items[::2].", "ipv6"),
    Negative("In Haskell, f :: Int -> Int.", "ipv6"),
    Negative("Call ::add(x) from the global scope.", "ipv6"),
)
