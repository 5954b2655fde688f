"""How e-mail addresses are compared when they decide who someone is (docs/identity.md,
"E-mail addresses").

An address from an identity provider's token is matched against staff grants made by
e-mail and against the invited customer's address. Unicode case mapping must not take
part: Python's `str.lower()` (and PostgreSQL's `lower()` under most locales) maps the
Kelvin sign `K` to an ASCII `k` and `İ` to `i` plus a combining dot, and case folding
maps `ß` to `ss`, so a mailbox the provider verified for someone else —
`\u212aate@example.com` — would otherwise claim the grant of `kate@example.com`.

The rule:
- the address is trimmed, and only ASCII letters are lower-cased (A-Z to a-z, in the
  local part and the domain); every other character must match exactly, code point for
  code point;
- no Unicode normalization either: even NFC maps the Kelvin sign to an ASCII `K` (it is
  a "singleton" canonical equivalent), and NFKC maps fullwidth `ｋ` to `k`. An accented
  letter written in two forms (composed, decomposed) is then two addresses: a person
  refused for that asks their provider for the form they were invited with — a refusal
  is the safe way to be wrong;
- a staff grant by e-mail names an ASCII address only: a non-ASCII address (an
  internationalised one, or one using look-alike letters) is refused when granting and
  never matches a grant at sign-in. Such a person is granted by `subject`.
"""

from __future__ import annotations

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def normalized_email(address: str) -> str:
    """The form two addresses are compared in: trimmed, ASCII letters lowered."""
    return address.strip().translate(_ASCII_LOWER)


def same_email(a: str, b: str) -> bool:
    return normalized_email(a) == normalized_email(b)


def grant_email(address: str | None) -> str | None:
    """The address as a staff grant by e-mail may match it: ASCII only, else none."""
    if address is None:
        return None
    normal = normalized_email(address)
    return normal if normal.isascii() else None
