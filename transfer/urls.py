"""Which partner endpoint URLs we call: http(s) to public addresses only (OWASP API7, server-side forgery).

`check_partner_url` runs when a connection is saved and again before every call. It refuses other schemes,
credentials in the URL, and hosts that are, or resolve to, loopback, private, link-local, multicast,
reserved, unspecified or otherwise not globally routable addresses, IPv4 or IPv6, including IPv4 hidden
inside IPv6 (``::ffff:127.0.0.1``, 6to4, Teredo, NAT64) and the numeric spellings a resolver accepts
(``http://2130706433/``, ``http://0x7f.1/``, ``http://0177.0.0.1/``). Every address a name resolves to must
pass, and the caller should connect to one of the returned `addresses`, so a second lookup cannot swap in
another (DNS rebinding).

``allow_private=True`` is the test setting (two instances on loopback): private, loopback and link-local
addresses pass; unspecified and multicast never do, as no server listens there.

Resolution goes through `resolve`, ``socket.getaddrinfo`` unless a test passes its own table.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from transfer.errors import PartnerHostUnresolvable, PartnerUrlRefused

Resolver = Callable[[str, int], Sequence[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_HOSTNAME = re.compile(r"(?=.{1,253}\.?$)([A-Za-z0-9_]([A-Za-z0-9_\-]{0,61}[A-Za-z0-9_])?\.?)+")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*")


@dataclass(frozen=True)
class PartnerEndpoint:
    """A URL the policy allows, with the addresses its host resolved to (connect to one of these)."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to; `PartnerHostUnresolvable` when it does not resolve now."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise PartnerHostUnresolvable(f"cannot resolve {host}: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_partner_url(
    url: str, *, allow_private: bool = False, resolve: Resolver = resolve_host
) -> PartnerEndpoint:
    """The endpoint behind `url` if the policy allows it, else `PartnerUrlRefused` saying why.

    >>> check_partner_url("http://2130706433/")
    Traceback (most recent call last):
    ...
    transfer.errors.PartnerUrlRefused: 2130706433 is 127.0.0.1, a loopback address
    """
    scheme, host, port = _parse(url)
    literal = _literal_address(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        resolved = resolve(host, port)
        if not resolved:
            raise PartnerHostUnresolvable(f"{host} resolves to no address")
        addresses = []
        for text in resolved:
            try:
                addresses.append(ipaddress.ip_address(text.split("%", 1)[0]))
            except ValueError:
                raise PartnerUrlRefused(f"{host} resolved to {text!r}, not an IP address") from None
    for address in addresses:
        why = refusal(address, allow_private=allow_private)
        if why is None:
            continue
        if literal is None:
            raise PartnerUrlRefused(f"{host} resolves to {address}, {why}")
        raise PartnerUrlRefused(f"{host} is {why}" if _plain_literal(host) else f"{host} is {address}, {why}")
    return PartnerEndpoint(url, scheme, host, port, tuple(str(a) for a in addresses))


def refusal(address: IPAddress, *, allow_private: bool = False) -> str | None:
    """Why the policy refuses to connect to `address` (``"a loopback address"``...), or ``None``."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = refusal(embedded, allow_private=allow_private)
            return f"{inner} inside an IPv6 address" if inner else None
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if allow_private:
        return None
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "not a globally routable address"
    return None


def _parse(url: str) -> tuple[str, str, int]:
    if len(url) > MAX_URL_LENGTH:
        raise PartnerUrlRefused(f"URL longer than {MAX_URL_LENGTH} characters")
    if not url.isascii() or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise PartnerUrlRefused(
            "a URL has no spaces, control or non-ASCII characters (use the xn-- form of a name)"
        )
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. a bracketed host that is not an IPv6 address
        raise PartnerUrlRefused(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise PartnerUrlRefused(f"only http and https URLs are allowed, not {scheme or 'a relative URL'!r}")
    if "@" in parts.netloc:
        raise PartnerUrlRefused("credentials do not belong in the URL; store them on the connection")
    if parts.fragment or url.endswith("#"):
        raise PartnerUrlRefused("a partner URL has no fragment")
    host = parts.hostname or ""
    if not host:
        raise PartnerUrlRefused("the URL has no host")
    try:
        port = parts.port
    except ValueError:
        raise PartnerUrlRefused("the URL's port is not a number from 1 to 65535") from None
    if port == 0:
        raise PartnerUrlRefused("the URL's port is not a number from 1 to 65535")
    return scheme, host, port or _DEFAULT_PORTS[scheme]


def _literal_address(host: str) -> IPAddress | None:
    """The address `host` spells, reading IPv4 as resolvers do (``0x7f.1`` is 127.0.0.1), else ``None``."""
    if ":" in host:  # only an IPv6 literal has colons in a host
        if "%" in host:
            raise PartnerUrlRefused("IPv6 zone identifiers are not allowed in a partner URL")
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise PartnerUrlRefused(f"{host!r} is not a valid IPv6 address") from None
    labels = host.removesuffix(".").split(".")
    if not _NUMERIC_LABEL.fullmatch(labels[-1]):
        if not _HOSTNAME.fullmatch(host):
            raise PartnerUrlRefused(f"{host!r} is not a valid host name")
        return None
    # The last label is a number, so this is an IPv4 address or nothing (WHATWG URL, "ends in a number").
    try:
        numbers = [_ipv4_number(label) for label in labels]
    except ValueError:
        raise PartnerUrlRefused(f"{host!r} is not a valid IPv4 address") from None
    if len(numbers) > 4 or any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise PartnerUrlRefused(f"{host!r} is not a valid IPv4 address")
    value = numbers[-1]
    for i, n in enumerate(numbers[:-1]):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def _plain_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _ipv4_number(label: str) -> int:
    if not label:
        raise ValueError("empty part")
    if label[:2].lower() == "0x":
        return int(label[2:], 16) if len(label) > 2 else 0
    if len(label) > 1 and label.startswith("0"):
        return int(label, 8)
    return int(label, 10)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo client, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None
