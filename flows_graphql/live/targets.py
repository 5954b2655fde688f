"""Where a webhook may be sent: the URL rules and the address rules (docs/webhooks.md).

A partner names the URL, so the URL is hostile: without these rules the server would
post on its behalf into the network it runs in (SSRF). The rules are checked twice:
when an endpoint is created or changed (the URL, and the addresses its name resolves
to then) and before every send (the addresses it resolves to now, since DNS can change
between the two); the connection is then made to the address that was checked, never
to the name again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from ..services.inputs import URL_LENGTH

# The one bound of URL inputs (a webhook URL passes services/inputs.py first).
MAX_URL_LENGTH = URL_LENGTH

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(Exception):
    """A URL or address webhooks may not be sent to; the message says why."""


@dataclass(frozen=True)
class Target:
    """A checked URL: what to connect to and what to tell the server."""

    url: str
    scheme: str
    host: str  # as written (a name, or an address)
    port: int
    path: str  # path and query, as sent in the request line

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"

    def url_for(self, address: Address) -> str:
        """The URL with the checked address in place of the name."""
        host = f"[{address}]" if address.version == 6 else str(address)
        return f"{self.scheme}://{host}:{self.port}{self.path}"


def parse_target(url: str, allow_loopback: bool) -> Target:
    """The URL's parts when webhooks may go there (addresses not resolved yet)."""
    if not isinstance(url, str) or not url.strip():
        raise TargetRefused("A URL is required.")
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"At most {MAX_URL_LENGTH} characters.")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise TargetRefused("The URL may not contain spaces or control characters.")
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetRefused("Not a URL.") from None
    allowed = ("https", "http") if allow_loopback else ("https",)
    if parts.scheme not in allowed:
        raise TargetRefused("Webhooks are sent to https:// URLs only.")
    host = parts.hostname
    if not host:
        raise TargetRefused("The URL names no host.")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("The URL may not carry a user name or password.")
    if parts.fragment:
        raise TargetRefused("The URL may not have a #fragment.")
    literal = _address(host)
    if literal is not None:
        why = refused_address(literal, allow_loopback)
        if why is not None:
            raise TargetRefused(why)
    elif not _is_hostname(host):
        raise TargetRefused("The URL's host is not a valid name.")
    elif (host == "localhost" or host.endswith(".localhost")) and not allow_loopback:
        raise TargetRefused("Webhooks may not be sent to loopback addresses.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(url, parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path)


def refused_address(address: Address, allow_loopback: bool) -> str | None:
    """Why webhooks may not go to `address` (None: they may)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return None if allow_loopback else "Webhooks may not be sent to loopback addresses."
    if address.is_link_local:
        return "Webhooks may not be sent to link-local addresses."
    if address.is_multicast:
        return "Webhooks may not be sent to multicast addresses."
    if address.is_private:
        return "Webhooks may not be sent to private addresses."
    if address.is_reserved or address.is_unspecified or not address.is_global:
        return "Webhooks may not be sent to reserved or non-public addresses."
    return None


async def resolve(target: Target, allow_loopback: bool) -> list[Address]:
    """The addresses to connect to, in the resolver's order: every address the name
    resolves to must be allowed (a name with one private address among public ones is
    refused as a whole)."""
    literal = _address(target.host)
    if literal is not None:
        addresses = [literal]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except (socket.gaierror, UnicodeError) as exc:
            raise TargetRefused(f"The host name does not resolve ({exc}).") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
        if not addresses:
            raise TargetRefused("The host name does not resolve.")
    for address in addresses:
        why = refused_address(address, allow_loopback)
        if why is not None:
            raise TargetRefused(f"{why} ({target.host} is {address})")
    return addresses


def _address(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _is_hostname(host: str) -> bool:
    if len(host) > 253:
        return False
    labels = host.rstrip(".").split(".")
    return all(
        0 < len(label) <= 63
        and label[0] != "-"
        and label[-1] != "-"
        and all(c.isalnum() or c == "-" for c in label)
        and label.isascii()
        for label in labels
    )
