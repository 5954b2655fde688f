"""The input checks every service shares: text, URLs, e-mail addresses, references.

Each check adds its problem to the `Problems` of the mutation (so a client sees every
problem of an input at once) and returns the value as it is stored (trimmed, lower-cased,
...). A value that failed a check never reaches a query: `flagged` says so.
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import urlsplit

from sqlalchemy import select

from ..db.models import Region
from .problems import ErrorCode, Problems
from .tx import Tx

SLUG = re.compile(r"[a-z0-9_-]{2,32}")
HTTP_URL = re.compile(r"https?://\S+")
# Deliberately simple: one @, no spaces, a dot in the domain. (The database CHECK is
# looser still; this is what the API promises.)
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
EMAIL_MAX = 254
# Lengths of free text: names, codes, serials, plots, titles…; addresses and summaries;
# URLs.
SHORT_TEXT = 200
LONG_TEXT = 5000
URL_LENGTH = 2048

# An `ID` input that names nothing of the expected type: looking it up finds nothing,
# so the service answers NOT_FOUND on that field, as for any unknown id.
NO_SUCH_ID = uuid.UUID(int=0)


# --- text ---------------------------------------------------------------------------


def storable(text: str) -> bool:
    """Whether PostgreSQL text can hold this: no NUL, and valid UTF-8 (no lone
    surrogates, which JSON can carry)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text_problem(problems: Problems, field: str, text: str, limit: int) -> bool:
    if len(text) > limit:
        problems.add(field, ErrorCode.INVALID, f"At most {limit} characters.")
        return True
    if not storable(text):
        problems.add(field, ErrorCode.INVALID, "Must be valid Unicode text without NUL.")
        return True
    return False


def required_text(problems: Problems, field: str, value: str, limit: int = SHORT_TEXT) -> str:
    """Text that must be there: surrounding whitespace is dropped; blank is INVALID."""
    text = value.strip()
    if not text:
        problems.add(field, ErrorCode.INVALID, "Must not be blank.")
    else:
        _text_problem(problems, field, text, limit)
    return text


def optional_text(
    problems: Problems, field: str, value: str | None, limit: int = SHORT_TEXT
) -> str | None:
    """Text that may be missing: surrounding whitespace is dropped; blank means none."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    _text_problem(problems, field, text, limit)
    return text


def slug(problems: Problems, field: str, value: str) -> str:
    """A code that appears in URLs and files (an ESCO's): trimmed, then lower-case
    letters, digits, `_` and `-`."""
    code = value.strip()
    if not SLUG.fullmatch(code):
        problems.add(
            field,
            ErrorCode.INVALID,
            "Must be 2 to 32 characters of lower-case letters, digits, `_` and `-`.",
        )
    return code


def flagged(problems: Problems, field: str) -> bool:
    """Whether `field` already has a problem (then it is not looked up: a value the
    database cannot hold, such as text with NUL, must not reach a query)."""
    return any(p.field == (field,) for p in problems.items)


# --- URLs and e-mail addresses ------------------------------------------------------


def http_url(
    problems: Problems, field: str, value: str | None, *, base: bool = False
) -> str | None:
    """An optional http(s) URL with a host; blank means none. A `base` URL (an ESCO's
    app, which invite links extend with `/invite/<token>`) has no query or fragment,
    and loses its trailing slashes."""
    if value is None:
        return None
    url = value.strip()
    if not url:
        return None
    if len(url) > URL_LENGTH:
        problems.add(field, ErrorCode.INVALID, f"At most {URL_LENGTH} characters.")
        return url
    try:
        parts = urlsplit(url)
        valid = (
            bool(HTTP_URL.fullmatch(url))
            and url.isprintable()
            and storable(url)
            and bool(parts.hostname)
        )
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        valid = False
    if not valid:
        problems.add(field, ErrorCode.INVALID, "Must be an http:// or https:// URL with a host.")
        return url
    if base:
        if parts.query or parts.fragment or url.endswith(("?", "#")):
            problems.add(field, ErrorCode.INVALID, "Must not have a query or a fragment.")
            return url
        url = url.rstrip("/")
    return url


def is_email(email: str) -> bool:
    """The API's one e-mail rule, on an address already trimmed and lower-cased."""
    return len(email) <= EMAIL_MAX and EMAIL_RE.match(email) is not None


def email(problems: Problems, field: str, value: str) -> str:
    """The e-mail as stored (trimmed, lower-cased); adds a problem when invalid."""
    address = value.strip().lower()
    if not is_email(address):
        problems.add(field, ErrorCode.INVALID, "Not a valid e-mail address.")
    return address


# --- references ---------------------------------------------------------------------


async def region(tx: Tx, problems: Problems, region_code: str) -> None:
    """A price-cap region named by its code; NOT_FOUND on `regionCode` otherwise
    (INVALID for text the database cannot hold, as for any text)."""
    if not storable(region_code):
        problems.add("regionCode", ErrorCode.INVALID, "Must be valid Unicode text without NUL.")
        return
    found = None  # a code this long names no region
    if len(region_code) <= SHORT_TEXT:
        found = await tx.conn.scalar(select(Region.code).where(Region.code == region_code))
    if found is None:
        problems.add("regionCode", ErrorCode.NOT_FOUND, "No region with this code.")
