"""Partner URLs: http(s) to public addresses only, however the address is spelled or resolved."""

from __future__ import annotations

import pytest

from transfer.errors import PartnerHostUnresolvable, PartnerUrlRefused
from transfer.urls import check_partner_url

# A resolver without a network: host name -> the addresses "DNS" answers.
DNS = {
    "crm.partner.example": ["93.184.215.14"],
    "crm.partner.example.": ["93.184.215.14"],
    "v6.partner.example": ["2606:4700::1111"],
    "both.partner.example": ["93.184.215.14", "2606:4700::1111"],
    "localhost": ["127.0.0.1", "::1"],
    "rebind.partner.example": ["93.184.215.14", "10.0.0.5"],
    "metadata.partner.example": ["169.254.169.254"],
    "mapped.partner.example": ["::ffff:192.168.0.1"],
    "intranet.partner.example": ["192.168.10.20"],
    "docs.partner.example": ["203.0.113.7"],
    "garbage.partner.example": ["not-an-ip"],
    "nothing.partner.example": [],
}


def resolve(host: str, port: int) -> list[str]:
    if host not in DNS:
        raise PartnerHostUnresolvable(f"cannot resolve {host}")
    return DNS[host]


ALLOWED = [
    ("https://crm.partner.example/api", ("93.184.215.14",), 443),
    ("http://crm.partner.example:8080/x?y=1", ("93.184.215.14",), 8080),
    ("HTTPS://CRM.Partner.Example/", ("93.184.215.14",), 443),
    ("https://v6.partner.example/", ("2606:4700::1111",), 443),
    ("https://both.partner.example/", ("93.184.215.14", "2606:4700::1111"), 443),
    ("http://8.8.8.8/", ("8.8.8.8",), 80),
    ("http://[2606:4700::1111]:8443/", ("2606:4700::1111",), 8443),
    ("http://crm.partner.example./", ("93.184.215.14",), 80),
]


@pytest.mark.parametrize(("url", "addresses", "port"), ALLOWED)
def test_public_http_endpoints_are_allowed(url, addresses, port):
    endpoint = check_partner_url(url, resolve=resolve)

    assert endpoint.addresses == addresses
    assert endpoint.port == port
    assert endpoint.url == url


REFUSED = [
    # schemes, credentials, shapes
    ("ftp://crm.partner.example/", "only http and https"),
    ("file:///etc/passwd", "only http and https"),
    ("gopher://crm.partner.example/", "only http and https"),
    ("//crm.partner.example/", "only http and https"),
    ("http://user:secret@crm.partner.example/", "credentials do not belong in the URL"),
    ("http://crm.partner.example@127.0.0.1/", "credentials do not belong in the URL"),
    ("http:///path", "no host"),
    ("http://crm.partner.example:0/", "port"),
    ("http://crm.partner.example:65536/", "port"),
    ("http://crm.partner.example:http/", "port"),
    ("http://crm.partner.example/#frag", "fragment"),
    ("http://crm.partner.example/\n", "control"),
    ("http://crm.partner .example/", "spaces"),
    ("http://bücher.example/", "xn--"),
    ("http://good..example/", "not a valid host name"),
    ("http://-bad.example/", "not a valid host name"),
    ("http://" + "a" * 2050 + ".example/", "longer than"),
    # IPv4 literals, in every spelling a resolver reads
    ("http://127.0.0.1/", "127.0.0.1 is a loopback address"),
    ("http://127.1/", "127.1 is 127.0.0.1, a loopback address"),
    ("http://2130706433/", "2130706433 is 127.0.0.1, a loopback address"),
    ("http://0x7f000001/", "0x7f000001 is 127.0.0.1, a loopback address"),
    ("http://0x7f.1/", "0x7f.1 is 127.0.0.1, a loopback address"),
    ("http://0177.0.0.1/", "0177.0.0.1 is 127.0.0.1, a loopback address"),
    ("http://017700000001/", "017700000001 is 127.0.0.1, a loopback address"),
    ("http://3232235521/", "3232235521 is 192.168.0.1, a private address"),
    ("http://0/", "0 is 0.0.0.0, the unspecified address"),
    ("http://0.0.0.0:5000/", "0.0.0.0 is the unspecified address"),
    ("http://10.1.2.3/", "a private address"),
    ("http://172.16.0.1/", "a private address"),
    ("http://192.168.1.1/", "a private address"),
    ("http://169.254.169.254/latest/meta-data/", "a link-local address"),
    ("http://100.64.0.1/", "not a globally routable address"),
    ("http://224.0.0.1/", "a multicast address"),
    ("http://240.0.0.1/", "address"),
    ("http://255.255.255.255/", "address"),
    ("http://256.0.0.1/", "not a valid IPv4 address"),
    ("http://1.2.3.4.5/", "not a valid IPv4 address"),
    ("http://08.0.0.1/", "not a valid IPv4 address"),
    # IPv6 literals, and IPv4 inside IPv6
    ("http://[::1]/", "::1 is a loopback address"),
    ("http://[::]/", "the unspecified address"),
    ("http://[fe80::1]/", "a link-local address"),
    ("http://[fe80::1%25eth0]/", "zone identifiers"),
    ("http://[fc00::1]/", "a private address"),
    ("http://[ff02::1]/", "a multicast address"),
    ("http://[::ffff:127.0.0.1]/", "a loopback address inside an IPv6 address"),
    ("http://[::ffff:7f00:1]/", "a loopback address inside an IPv6 address"),
    ("http://[::ffff:169.254.169.254]/", "a link-local address inside an IPv6 address"),
    ("http://[2002:c0a8:101::]/", "a private address inside an IPv6 address"),
    ("http://[64:ff9b::7f00:1]/", "a loopback address inside an IPv6 address"),
    ("http://[::127.0.0.1]/", "a reserved address"),
    ("http://[2001:db8::1]/", "address"),
    ("http://[not:an:ip]/", "not a valid"),
    # names resolving to what the policy refuses: every answer counts
    ("http://localhost:5000/", "localhost resolves to 127.0.0.1, a loopback address"),
    ("http://rebind.partner.example/", "resolves to 10.0.0.5, a private address"),
    ("http://metadata.partner.example/", "resolves to 169.254.169.254, a link-local address"),
    ("http://mapped.partner.example/", "a private address inside an IPv6 address"),
    ("http://docs.partner.example/", "resolves to 203.0.113.7"),
    ("http://garbage.partner.example/", "not an IP address"),
]


@pytest.mark.parametrize(("url", "why"), REFUSED)
def test_endpoints_outside_the_policy_are_refused_saying_why(url, why):
    with pytest.raises(PartnerUrlRefused) as caught:
        check_partner_url(url, resolve=resolve)

    assert why in str(caught.value)
    assert caught.value.to_problem()["status"] == 422


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5000/",
        "http://localhost:5000/",
        "http://[::1]:5000/",
        "http://2130706433:5000/",
        "http://intranet.partner.example/",
        "http://169.254.169.254/",
    ],
)
def test_the_test_setting_allows_loopback_and_private_addresses(url):
    assert check_partner_url(url, allow_private=True, resolve=resolve).addresses


@pytest.mark.parametrize(
    "url",
    [
        "http://0.0.0.0:5000/",
        "http://[::]/",
        "http://224.0.0.1/",
        "ftp://127.0.0.1/",
        "http://u:p@127.0.0.1/",
    ],
)
def test_the_test_setting_still_refuses_what_no_server_answers_and_bad_shapes(url):
    with pytest.raises(PartnerUrlRefused):
        check_partner_url(url, allow_private=True, resolve=resolve)


def test_a_name_that_does_not_resolve_now_is_unavailable_not_refused():
    with pytest.raises(PartnerHostUnresolvable) as caught:
        check_partner_url("https://gone.partner.example/", resolve=resolve)
    assert caught.value.to_problem()["status"] == 502

    with pytest.raises(PartnerHostUnresolvable):
        check_partner_url("https://nothing.partner.example/", resolve=resolve)


def test_literal_addresses_are_never_looked_up():
    def no_lookups(host: str, port: int) -> list[str]:
        raise AssertionError(f"looked up {host}")

    assert check_partner_url("http://8.8.8.8/", resolve=no_lookups).addresses == ("8.8.8.8",)


def test_the_default_resolver_answers_for_localhost_without_the_network():
    with pytest.raises(PartnerUrlRefused, match="loopback"):
        check_partner_url("http://localhost:5000/")
