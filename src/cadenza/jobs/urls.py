"""Where webhooks may go: ``https`` to public addresses, and, for the hosts named in the setting
``webhook_allowed_hosts``, also ``http`` and private or loopback addresses; never this server's own listening
address unless ``webhook_allow_self`` says so (with auth off, a webhook to itself could call its admin routes).
This follows the OWASP Server-Side Request Forgery Prevention Cheat Sheet: allow-list what is internal, check the
address actually connected to, follow no redirects, and refuse the alternative spellings of internal addresses.

Every host is first normalised the way browsers and the WHATWG URL Standard read it (§3.5 "host parsing",
https://url.spec.whatwg.org/#host-parsing), so that no spelling slips past the policy:

* percent-decoding, then UTS #46 mapping (https://www.unicode.org/reports/tr46/, by the ``idna`` package, which
  maps compatibility characters as NFKC does: full-width ``１２７．０．０．１``, ideographic ``。``, circled ``①``),
  lower case, IDNA 2008 A-labels for what is still non-ASCII, and one trailing dot removed;
* a host that "ends in a number" is an IPv4 address in any of the forms ``inet_aton(3)`` takes: a 32-bit integer
  (``2130706433``), octal (``0177``) and hex (``0x7f``) parts, the 1–3 part shortened forms (``127.1``, ``0``).
  It is read by the WHATWG IPv4 parser, written out below (glibc's ``inet_aton`` also accepts trailing junk
  after a space, which the standard does not);
* an IPv6 literal whose address embeds an IPv4 one (IPv4-mapped ``::ffff:127.0.0.1``) is that IPv4 address.

:func:`check_webhook_url` runs when a job is submitted (no DNS lookup: a cheap, clear 422);
:func:`resolve_webhook` runs before each delivery and returns the normalised host and the checked address the
dispatcher connects to, so a name that resolves to a private address later (DNS rebinding) is refused then.
A refusal is a :class:`WebhookAddressError` (final: the delivery is not retried); a name that does not resolve
now is a :class:`WebhookLookupError` (DNS may come back: retried).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

import idna

ALLOWED_SCHEMES = ("https", "http")
ACCEPTED = (
    "webhooks go to https URLs whose host is a public name or address, or to the hosts listed in the setting "
    "webhook_allowed_hosts (which may also use http)"
)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

FORBIDDEN_DOMAIN_CODE_POINTS = frozenset("\x00\t\n\r #/:<>?@[\\]^|%\x7f") | {chr(c) for c in range(0x20)}
"""WHATWG URL Standard, "forbidden domain code point": never part of a host name."""
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
"""RFC 6052's well-known NAT64 prefix: the last 32 bits are the IPv4 address reached."""
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
"""RFC 4291 §2.5.5.1 (deprecated) IPv4-compatible addresses: the last 32 bits are an IPv4 address."""


class WebhookAddressError(ValueError):
    """A webhook URL or its resolved address that deliveries may not reach (a final refusal)."""


class WebhookLookupError(OSError):
    """A webhook's host name did not resolve now (DNS may answer later: the delivery is retried)."""


# ---------------------------------------------------------------------------------------------- host parsing
def _ipv4_number(part: str) -> int | None:
    """The WHATWG "IPv4 number parser": decimal, ``0``-prefixed octal, ``0x``-prefixed hex (``0x`` alone is 0);
    None for failure."""
    if not part:
        return None
    radix, digits = 10, "0123456789"
    if len(part) >= 2 and part[:2] in ("0x", "0X"):
        part, radix, digits = part[2:], 16, "0123456789abcdefABCDEF"
    elif len(part) >= 2 and part[0] == "0":
        part, radix, digits = part[1:], 8, "01234567"
    if not part:
        return 0
    if any(c not in digits for c in part):  # also keeps int()'s "_", "+" and non-ASCII digits out
        return None
    return int(part, radix)


def ends_in_a_number(host: str) -> bool:
    """The WHATWG "ends in a number checker": whether ``host`` (ASCII, lower case) must be read as IPv4."""
    parts = host.split(".")
    if parts[-1] == "":
        if len(parts) == 1:
            return False
        parts.pop()
    last = parts[-1]
    if last and all(c in "0123456789" for c in last):
        return True
    return _ipv4_number(last) is not None


def parse_ipv4(host: str) -> ipaddress.IPv4Address:
    """The WHATWG "IPv4 parser" (the forms ``inet_aton(3)`` accepts: ``a.b.c.d``, ``a.b.c`` with a 16-bit last
    part, ``a.b`` with a 24-bit one, ``a`` as 32 bits; each part decimal, ``0`` octal or ``0x`` hex).
    Raises ValueError for a host that ends in a number but is no IPv4 address (``1.2.3.4.5``, ``256.1.1.1``)."""
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if len(parts) > 4:
        raise ValueError("an IPv4 address has at most 4 parts")
    numbers = [_ipv4_number(part) for part in parts]
    if None in numbers:
        raise ValueError("an IPv4 part is not a decimal, octal (0…) or hex (0x…) number")
    values: list[int] = numbers  # type: ignore[assignment]
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise ValueError("an IPv4 part is out of range")
    ipv4 = values[-1] + sum(n * 256 ** (3 - i) for i, n in enumerate(values[:-1]))
    return ipaddress.IPv4Address(ipv4)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for or tunnels to: IPv4-mapped (RFC 4291), 6to4 (RFC 3056),
    NAT64 well-known prefix (RFC 6052), IPv4-compatible (RFC 4291, deprecated)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64 or address in IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True)
class WebhookHost:
    """A URL's host as the policy checks it and the dispatcher dials it.

    ``name``: an ASCII lower-case domain (A-labels, no trailing dot), a dotted-quad IPv4 address, or an IPv6
    address (compressed, no brackets); ``address``: the IP literal it is, None for a domain name. An IPv4-mapped
    IPv6 literal is its IPv4 address (``::ffff:127.0.0.1`` → ``127.0.0.1``)."""

    name: str
    address: Address | None = None

    @property
    def netloc(self) -> str:
        """The host as written in a URL (IPv6 in brackets)."""
        return f"[{self.name}]" if ":" in self.name else self.name


def _address_host(address: Address) -> WebhookHost:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return WebhookHost(str(address), address)


def normalise_host(host: str) -> WebhookHost:
    """``host`` (a URL's host, as ``urlsplit().hostname`` gives it, or a ``webhook_allowed_hosts`` entry) as the
    WHATWG host parser reads it (see the module's docstring). Raises :class:`WebhookAddressError` for a host no
    URL can have (invalid IDNA, forbidden characters, a number that is no IPv4 address)."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        text = unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise WebhookAddressError(f"webhook host {host!r} is not valid UTF-8 once percent-decoded") from None
    if ":" in text:  # only an IPv6 literal has colons (urlsplit wants it in brackets)
        try:
            return _address_host(ipaddress.IPv6Address(text))
        except ValueError:
            raise WebhookAddressError(f"webhook host [{host}] is not a valid IPv6 address") from None
    try:
        # UTS #46 mapping: NFKC compatibility forms, case folding, the ideographic and full-width full stops as
        # "."; std3_rules off and non-transitional as in the WHATWG "domain to ASCII" (so "_" stays valid)
        mapped = idna.uts46_remap(text, std3_rules=False, transitional=False)
        if any(c in FORBIDDEN_DOMAIN_CODE_POINTS for c in mapped):
            raise idna.IDNAError("it contains a character no host name may have")
        if not mapped.isascii():
            mapped = ".".join(
                label if label.isascii() else idna.alabel(label).decode("ascii") for label in mapped.split(".")
            )
    except (idna.IDNAError, UnicodeError) as exc:
        raise WebhookAddressError(f"webhook host {host!r} is not a valid host name ({exc})") from None
    name = mapped.lower().removesuffix(".")
    if not name:
        raise WebhookAddressError(f"webhook host {host!r} is empty")
    if ends_in_a_number(name):
        try:
            return _address_host(parse_ipv4(name))
        except ValueError as exc:
            raise WebhookAddressError(
                f"webhook host {host!r} ends in a number but is not an IPv4 address ({exc})"
            ) from None
    return WebhookHost(name)


# ---------------------------------------------------------------------------------------------- the policy
def _not_public(address: Address) -> str | None:
    """None if ``address`` is a public unicast address (and so is the IPv4 address it embeds); else what it is,
    for the error message."""
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified:
        return "the unspecified address (connecting to it reaches this machine)"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "a reserved, not publicly routable address"
    embedded = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    what = None if embedded is None else _not_public(embedded)
    return None if what is None else f"an IPv6 address standing for {embedded}, {what}"


def _is_local_name(name: str) -> bool:
    return name == "localhost" or name.endswith(".localhost")  # RFC 6761 §6.3: always loopback


def _is_loopback_or_any(address: Address | None) -> bool:
    return address is not None and (address.is_loopback or address.is_unspecified)


def _is_this_machine(address: Address) -> bool:
    """Whether ``address`` is assigned to this machine: binding a socket to it succeeds only then (EADDRNOTAVAIL
    otherwise, bind(2); unless Linux's ``ip_nonlocal_bind`` is on), the standard library's way to ask without
    listing interfaces."""
    family = socket.AF_INET6 if isinstance(address, ipaddress.IPv6Address) else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((str(address), 0))
        return True
    except OSError:
        return False


def _lenient_host(entry: str) -> str:
    try:
        return normalise_host(entry.strip()).name
    except WebhookAddressError:
        return entry.strip().lower().strip("[]")


@dataclass(frozen=True)
class WebhookPolicy:
    """What the settings allow: ``allowed_hosts`` (normalised ``webhook_allowed_hosts``), the server's own
    listening ``server_host`` and ``server_port`` (None: unknown, no self check) and ``allow_self``."""

    allowed_hosts: frozenset[str] = frozenset()
    server_host: WebhookHost | None = None
    server_port: int | None = None
    allow_self: bool = False

    @classmethod
    def from_settings(cls, settings: Any) -> WebhookPolicy:
        """The policy of a :class:`~cadenza.settings.Settings`: ``webhook_allowed_hosts``, ``host``, ``port``,
        ``webhook_allow_self``."""
        host = settings.host.strip() or "0.0.0.0"
        try:
            server_host = normalise_host(host)
        except WebhookAddressError:
            server_host = WebhookHost(host.lower())
        return cls(
            allowed_hosts=frozenset(_lenient_host(h) for h in settings.webhook_allowed_hosts),
            server_host=server_host,
            server_port=settings.port,
            allow_self=settings.webhook_allow_self,
        )

    @classmethod
    def of(cls, value: WebhookPolicy | Iterable[str]) -> WebhookPolicy:
        """``value`` itself, or the policy of a bare ``webhook_allowed_hosts`` list (no self check)."""
        if isinstance(value, WebhookPolicy):
            return value
        return cls(allowed_hosts=frozenset(_lenient_host(h) for h in value))

    def allows(self, host: WebhookHost) -> bool:
        """Whether ``host`` (normalised) is one of ``webhook_allowed_hosts``."""
        return host.name in self.allowed_hosts

    def is_self(self, host: WebhookHost, port: int) -> bool:
        """Whether ``host:port`` is this server's own listening address: its ``host`` setting; when that is
        loopback or the wildcard (``0.0.0.0``, ``::``), any loopback spelling (``localhost``, ``127.x``,
        ``::1``, ``0.0.0.0``); with the wildcard, also any address of this machine. Never with ``allow_self``."""
        server = self.server_host
        if self.allow_self or server is None or port != self.server_port:
            return False
        if host.name == server.name:
            return True
        server_local = _is_local_name(server.name) or _is_loopback_or_any(server.address)
        if server_local and (_is_local_name(host.name) or _is_loopback_or_any(host.address)):
            return True
        wildcard = server.address is not None and server.address.is_unspecified
        return wildcard and host.address is not None and _is_this_machine(host.address)

    def refusal(self, host: WebhookHost, port: int, scheme: str, shown: str) -> str | None:
        """Why a webhook to ``host:port`` may not be sent (``shown``: the host as the URL spells it), or None."""
        read_as = "" if shown == host.name else f" (read as {host.netloc})"
        if self.is_self(host, port):
            return (
                f"webhook host {shown!r}{read_as} port {port} is this server's own address (it listens on "
                f"{self.server_host.netloc if self.server_host else '?'}:{self.server_port}), refused so that a "
                "webhook cannot call this server's API; point it at another host or port, or set "
                "webhook_allow_self to allow it"
            )
        if self.allows(host):
            return None
        if host.address is not None:
            what = _not_public(host.address)
            if what is not None:
                return f"webhook host {shown!r}{read_as} is {what}; {ACCEPTED}"
        elif _is_local_name(host.name):
            return f"webhook host {shown!r}{read_as} is a loopback name (localhost); {ACCEPTED}"
        if scheme != "https":
            return (
                f"webhook must use https; http is accepted only for the hosts in webhook_allowed_hosts, not {shown!r}"
            )
        return None


# ---------------------------------------------------------------------------------------------- the checks
@dataclass(frozen=True)
class WebhookTarget:
    """A checked webhook URL: the normalised ``host``, the ``port`` (explicit or the scheme's), the URL rewritten
    with the normalised host (``url``: what the dispatcher sends to) and, after resolution, the ``ip`` dialled."""

    parts: SplitResult
    host: WebhookHost
    port: int
    url: str
    ip: str | None = None

    @property
    def host_header(self) -> str:
        """``Host``: the normalised host, with the port when the URL names one."""
        return self.host.netloc + (f":{self.parts.port}" if self.parts.port is not None else "")


def _check(url: str, policy: WebhookPolicy) -> WebhookTarget:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise WebhookAddressError(f"webhook is not a valid URL ({exc})") from None
    if parts.scheme not in ALLOWED_SCHEMES or not parts.hostname:
        raise WebhookAddressError("webhook must be an absolute https URL (https://host/path)")
    if port == 0:
        raise WebhookAddressError("webhook port 0 is not a port")
    shown = parts.hostname
    host = normalise_host(shown)
    port = port if port is not None else (443 if parts.scheme == "https" else 80)
    reason = policy.refusal(host, port, parts.scheme, shown)
    if reason is not None:
        raise WebhookAddressError(reason)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (userinfo + "@" if userinfo else "") + host.netloc + (f":{parts.port}" if parts.port else "")
    normalised = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return WebhookTarget(parts, host, port, normalised)


def check_webhook_url(url: str, policy: WebhookPolicy | Iterable[str] = ()) -> str:
    """Return ``url`` (stripped) if webhooks may be sent to it; raise :class:`WebhookAddressError` (a ValueError)
    saying why not: not an absolute ``http(s)`` URL; a host that is, in any spelling, a private, loopback,
    link-local, unspecified or reserved address (or ``localhost``) and not in ``webhook_allowed_hosts``; ``http``
    to a host not in that list; this server's own address without ``webhook_allow_self``. ``policy`` is a
    :class:`WebhookPolicy` or a bare ``webhook_allowed_hosts`` list (then nothing is known of the server)."""
    _check(url, WebhookPolicy.of(policy))
    return url.strip()


def resolve_webhook(url: str, policy: WebhookPolicy | Iterable[str] = ()) -> WebhookTarget:
    """``url`` checked as :func:`check_webhook_url` does, its normalised host resolved now: every address it
    resolves to must pass the policy too (public, or the host or that address allowed; not this server).
    The target's ``ip`` is the first address, the one to connect to. Raises :class:`WebhookAddressError`, or
    :class:`WebhookLookupError` when the name does not resolve now."""
    checked = WebhookPolicy.of(policy)
    target = _check(url, checked)
    host = target.host
    if host.address is not None:
        return WebhookTarget(target.parts, host, target.port, target.url, host.name)
    try:
        infos = socket.getaddrinfo(host.name, target.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise WebhookLookupError(f"webhook host {host.name!r} does not resolve ({exc})") from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise WebhookLookupError(f"webhook host {host.name!r} has no address")
    host_allowed = checked.allows(host)
    for text in addresses:
        try:
            resolved = _address_host(ipaddress.ip_address(text.split("%", 1)[0]))
        except ValueError:
            raise WebhookAddressError(f"webhook host {host.name!r} resolves to {text!r}, not an IP address") from None
        if checked.is_self(resolved, target.port):
            raise WebhookAddressError(
                f"webhook host {host.name!r} resolves to {resolved.name}, this server's own address (port "
                f"{target.port}); set webhook_allow_self to allow it"
            )
        what = None if host_allowed or checked.allows(resolved) else _not_public(resolved.address)  # type: ignore[arg-type]
        if what is not None:
            raise WebhookAddressError(
                f"webhook host {host.name!r} resolves to {text}, {what}; add the host to webhook_allowed_hosts "
                "to allow it"
            )
    return WebhookTarget(target.parts, host, target.port, target.url, addresses[0])
