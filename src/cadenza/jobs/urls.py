"""Where webhooks may go: ``https`` to public addresses, and, for the hosts named in the setting
``webhook_allowed_hosts``, also ``http`` and private or loopback addresses (OWASP SSRF prevention cheat sheet:
allow-list what is internal, check the address actually connected to, follow no redirects).

:func:`check_webhook_url` runs when a job is submitted (no DNS lookup: a cheap, clear 422);
:func:`resolve_public` runs before each delivery and returns the checked address the dispatcher connects to, so
a name that resolves to a private address later (DNS rebinding) is refused then.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

ALLOWED_SCHEMES = ("https", "http")


class WebhookAddressError(ValueError):
    """A webhook URL or its resolved address that deliveries may not reach."""


def _host_allowed(host: str, allowed: Iterable[str]) -> bool:
    names = {a.strip().lower().strip("[]") for a in allowed}
    return host.lower() in names


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def check_webhook_url(url: str, allowed_hosts: Iterable[str] = ()) -> str:
    """Return ``url`` if webhooks may be sent to it; raise :class:`WebhookAddressError` (a ValueError) saying
    why not: not an absolute ``http(s)`` URL, ``http`` or a private, loopback, link-local or reserved IP literal
    (or ``localhost``) for a host that ``allowed_hosts`` does not name."""
    allowed = list(allowed_hosts)
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise WebhookAddressError(f"webhook is not a valid URL ({exc})") from None
    if parts.scheme not in ALLOWED_SCHEMES or not parts.hostname:
        raise WebhookAddressError("webhook must be an absolute https URL (https://host/path)")
    host = parts.hostname
    if port == 0:
        raise WebhookAddressError("webhook port 0 is not a port")
    if _host_allowed(host, allowed):
        return url.strip()
    if parts.scheme != "https":
        raise WebhookAddressError(
            f"webhook must use https; http is accepted only for the hosts in webhook_allowed_hosts, not {host!r}"
        )
    address = _ip(host)
    if (address is not None and not address.is_global) or host.lower() == "localhost" or host.endswith(".localhost"):
        raise WebhookAddressError(
            f"webhook host {host!r} is not a public address; add it to webhook_allowed_hosts to allow it"
        )
    return url.strip()


def resolve_public(url: str, allowed_hosts: Iterable[str] = ()) -> tuple[str, int]:
    """``(ip, port)`` to connect to for ``url``: its host resolved now, every address public unless the host (or
    that address) is in ``allowed_hosts``. Raises :class:`WebhookAddressError` (also when the name does not
    resolve)."""
    check_webhook_url(url, allowed_hosts)
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise WebhookAddressError(f"webhook host {host!r} does not resolve ({exc})") from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise WebhookAddressError(f"webhook host {host!r} has no address")
    allowed = list(allowed_hosts)
    host_allowed = _host_allowed(host, allowed)
    for text in addresses:
        address = _ip(text)
        if address is None or not (host_allowed or address.is_global or _host_allowed(str(address), allowed)):
            raise WebhookAddressError(
                f"webhook host {host!r} resolves to {text}, which is not a public address; "
                "add the host to webhook_allowed_hosts to allow it"
            )
    return addresses[0], port
