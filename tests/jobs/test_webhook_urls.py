"""The webhook address policy's host normaliser (WHATWG URL host parsing: UTS #46 mapping, the inet_aton IPv4
forms, IPv4 in IPv6), allow-list matching on normalised hosts, the server's own address, and the delivery-time
resolution (DNS rebinding refused; a name that does not resolve is a lookup error, retried)."""

from __future__ import annotations

import socket
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from cadenza.jobs.urls import (
    WebhookAddressError,
    WebhookLookupError,
    WebhookPolicy,
    check_webhook_url,
    normalise_host,
    resolve_webhook,
)

LOOPBACK_SPELLINGS = [
    ("2130706433", "127.0.0.1"),  # one 32-bit number
    ("0177.0.0.1", "127.0.0.1"),  # octal part
    ("0x7f.1", "127.0.0.1"),  # hex part, 2-part form (24-bit last part)
    ("0x7F.0.1", "127.0.0.1"),  # 3-part form (16-bit last part), upper-case hex
    ("127.1", "127.0.0.1"),
    ("0", "0.0.0.0"),
    ("127.0.0.1.", "127.0.0.1"),  # trailing dot
    ("１２７．０．０．１", "127.0.0.1"),  # full-width digits and full stops
    ("127。0。0。1", "127.0.0.1"),  # ideographic full stop
    ("①②⑦.0.0.1", "127.0.0.1"),  # circled digits
    ("%31%32%37.0.0.1", "127.0.0.1"),  # percent-encoded
    ("::ffff:127.0.0.1", "127.0.0.1"),  # IPv4-mapped IPv6 is its IPv4
    ("[::ffff:7f00:1]", "127.0.0.1"),
    ("::1", "::1"),
    ("[0:0:0:0:0:0:0:1]", "::1"),
]


@pytest.mark.parametrize(("host", "expected"), LOOPBACK_SPELLINGS)
def test_every_spelling_of_loopback_normalises_to_its_address(host: str, expected: str) -> None:
    normalised = normalise_host(host)
    assert normalised.name == expected and str(normalised.address) == expected


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's inet_aton(3) is the reference")
@pytest.mark.parametrize("host", ["2130706433", "0177.0.0.1", "0x7f.1", "0x7F.0.1", "127.1", "0", "192.168.257"])
def test_the_ipv4_forms_read_as_inet_aton_reads_them(host: str) -> None:
    assert normalise_host(host).name == socket.inet_ntoa(socket.inet_aton(host))


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("Hooks.Example.COM.", "hooks.example.com"),
        ("ＨＯＯＫＳ．example．com", "hooks.example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("my_host.example", "my_host.example"),  # "_" is no IDNA 2008 letter, but hosts have it (WHATWG: valid)
        ("8.8.8.8", "8.8.8.8"),
        ("0x8.0x8.0x8.0x8", "8.8.8.8"),
        ("2606:4700:4700::1111", "2606:4700:4700::1111"),
        ("1.2.3.x", "1.2.3.x"),  # does not end in a number: a name
    ],
)
def test_names_and_public_addresses_normalise_plainly(host: str, expected: str) -> None:
    assert normalise_host(host).name == expected


@pytest.mark.parametrize(
    "host",
    ["1.2.3.4.5", "256.0.0.1", "1.2.65536", "4294967296", "09.0.0.1", "1.2.3.08", "a b.example", "::zz", "x\x00y"],
)
def test_hosts_no_url_can_have_are_refused(host: str) -> None:
    with pytest.raises(WebhookAddressError, match="webhook host"):
        normalise_host(host)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/x",
        "https://8.8.8.8/x",
        "https://[2606:4700:4700::1111]:8443/x",
        "https://bücher.example/x",
        "https://my_host.example./x",
    ],
)
def test_ordinary_names_and_public_ips_pass(url: str) -> None:
    assert check_webhook_url(url) == url


@pytest.mark.parametrize(
    ("url", "what"),
    [
        ("https://[::7f00:1]/", "standing for 127.0.0.1, a loopback address"),  # IPv4-compatible
        ("https://[2002:7f00:1::]/", "standing for 127.0.0.1, a loopback address"),  # 6to4
        ("https://[64:ff9b::a00:7]/", "standing for 10.0.0.7, a private address"),  # NAT64
        ("https://0xa.7/", "a private address"),
        ("https://0xa9fea9fe/latest/meta-data", "a link-local address"),  # 169.254.169.254
        ("https://LOCALHOST./", "loopback name"),
        ("https://[fe80::1%25eth0]/", "a link-local address"),
    ],
)
def test_other_internal_spellings_are_refused_saying_what_they_are(url: str, what: str) -> None:
    with pytest.raises(WebhookAddressError, match="webhook_allowed_hosts") as refused:
        check_webhook_url(url)
    assert what in str(refused.value)


def test_allowed_hosts_match_on_normalised_forms() -> None:
    assert check_webhook_url("http://0x7f.1:9/h", ["127.0.0.1"]) == "http://0x7f.1:9/h"
    assert check_webhook_url("http://[::ffff:127.0.0.1]:9/h", ["127.0.0.1"])
    assert check_webhook_url("http://127.0.0.1:9/h", ["0177.0.0.1"])  # the setting's entry is normalised too
    assert check_webhook_url("http://Hooks.Internal./x", [" HOOKS.internal "])
    assert check_webhook_url("http://localhost:9/x", ["LOCALHOST."])
    assert check_webhook_url("http://[::1]:9/x", ["[::1]"])
    with pytest.raises(WebhookAddressError, match="127.0.0.2"):
        check_webhook_url("http://127.0.0.2:9/h", ["127.0.0.1"])  # one loopback address allowed, not all


def policy(host: str = "127.0.0.1", port: int = 8000, allow_self: bool = False, allowed: Any = None) -> WebhookPolicy:
    hosts = ["127.0.0.1", "127.0.0.2", "localhost", "::1", "10.0.0.5"] if allowed is None else allowed
    settings = SimpleNamespace(host=host, port=port, webhook_allowed_hosts=hosts, webhook_allow_self=allow_self)
    return WebhookPolicy.from_settings(settings)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/v1/admin/reload",
        "http://localhost:8000/v1/admin/reload",
        "http://[::1]:8000/v1/admin/reload",
        "http://0x7f.1:8000/v1/admin/reload",
        "http://127.0.0.2:8000/",  # all of 127/8 is loopback
    ],
)
@pytest.mark.parametrize("server", ["127.0.0.1", "0.0.0.0", "localhost"])
def test_the_servers_own_address_is_refused_even_when_loopback_is_allowed(url: str, server: str) -> None:
    with pytest.raises(WebhookAddressError, match="this server's own address.*webhook_allow_self"):
        check_webhook_url(url, policy(server))
    assert check_webhook_url(url, policy(server, allow_self=True)) == url


def test_only_the_servers_own_port_and_address_are_self() -> None:
    assert check_webhook_url("http://127.0.0.1:8001/", policy())  # another port: another program
    on_lan = policy("10.0.0.5")
    with pytest.raises(WebhookAddressError, match="own address"):
        check_webhook_url("http://10.0.0.5:8000/", on_lan)
    assert check_webhook_url("http://127.0.0.1:8000/", on_lan)  # it does not listen on loopback
    with pytest.raises(WebhookAddressError, match="own address"):  # https's default port is the server's
        check_webhook_url("https://localhost/", policy(port=443))
    everywhere = policy("0.0.0.0", allowed=["192.0.2.1"])  # a wildcard server: its machine's addresses are self
    assert check_webhook_url("http://192.0.2.1:8000/", everywhere)  # TEST-NET-1: no interface of this machine


def fake_dns(answers: dict[str, str | Exception]) -> Any:
    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list:
        answer = answers.get(host)
        if answer is None:
            raise AssertionError(f"looked up {host!r}")  # IP literals are never looked up
        if isinstance(answer, Exception):
            raise answer
        family = socket.AF_INET6 if ":" in answer else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (answer, port))]

    return getaddrinfo


def test_delivery_time_resolution_refuses_rebinding_and_the_servers_own_address(monkeypatch) -> None:
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        fake_dns(
            {
                "hooks.example.com": "10.0.0.7",
                "mapped.example.com": "::ffff:127.0.0.1",
                "me.internal": "127.0.0.1",
                "xn--bcher-kva.example": "93.184.216.34",
                "gone.example.com": socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            }
        ),
    )
    with pytest.raises(WebhookAddressError, match="resolves to 10.0.0.7, a private address"):
        resolve_webhook("https://hooks.example.com/x")
    with pytest.raises(WebhookAddressError, match="resolves to ::ffff:127.0.0.1, a loopback address"):
        resolve_webhook("https://mapped.example.com/x")
    allowed = policy(allowed=["me.internal"])
    with pytest.raises(WebhookAddressError, match="127.0.0.1, this server's own address"):
        resolve_webhook("http://me.internal:8000/v1/admin/reload", allowed)
    assert resolve_webhook("http://me.internal:8001/x", allowed).ip == "127.0.0.1"
    with pytest.raises(WebhookLookupError, match="does not resolve") as lookup:
        resolve_webhook("https://gone.example.com/x")
    assert not isinstance(lookup.value, WebhookAddressError)  # DNS may come back: retried, not refused
    idn = resolve_webhook("https://BÜCHER.example:8443/p?q=1")  # the normalised name is looked up and sent
    assert (idn.ip, idn.port, idn.host_header) == ("93.184.216.34", 8443, "xn--bcher-kva.example:8443")
    assert idn.url == "https://xn--bcher-kva.example:8443/p?q=1"


def test_an_ip_spelling_is_dialled_as_the_address_checked(monkeypatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", fake_dns({}))  # no lookup at all
    target = resolve_webhook("http://0x7f.1:9/h?x=1", ["127.0.0.1"])
    assert (target.ip, target.port, target.host_header, target.url) == (
        "127.0.0.1",
        9,
        "127.0.0.1:9",
        "http://127.0.0.1:9/h?x=1",
    )
    mapped = resolve_webhook("http://[::ffff:127.0.0.1]/h", ["127.0.0.1"])
    assert (mapped.ip, mapped.port, mapped.host_header) == ("127.0.0.1", 80, "127.0.0.1")
    v6 = resolve_webhook("http://[::1]:9/h", ["::1"])
    assert (v6.ip, v6.host_header, v6.url) == ("::1", "[::1]:9", "http://[::1]:9/h")
