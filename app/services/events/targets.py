"""Where webhooks may go: a guard against requests to the service's own network (SSRF).

By default a target is an `https` URL whose host resolves only to global addresses (no
private, loopback, link-local, shared or reserved range). `WEBHOOK_ALLOWED_HOSTS` names hosts
and networks that are allowed even so (a provincial intranet); `WEBHOOK_ALLOW_HTTP` permits
plain http; `WEBHOOK_ALLOW_PRIVATE` lifts the address rule entirely (closed networks, tests).
The URL is checked when a subscription is saved, and its host resolved and checked again before
every delivery, since a name can be pointed elsewhere after it was saved. (A name that changes
between that check and the connection itself is not caught: put the worker in a network that
cannot reach internal services if that matters.)"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from app.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(ValueError):
    """The URL may not be called; the message says why."""


def _networks(
    settings: Settings,
) -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    names: set[str] = set()
    networks = []
    for entry in settings.webhook_allowed_hosts:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            names.add(entry.strip().lower().rstrip("."))
    return names, networks


def _address_allowed(address: IPAddress, settings: Settings) -> bool:
    if settings.webhook_allow_private:
        return True
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    _, networks = _networks(settings)
    if any(address in n for n in networks):
        return True
    return address.is_global and not address.is_multicast


def check_url(url: str, settings: Settings) -> str:
    """The host of an acceptable URL, or TargetRefused. No name is resolved here."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a bad port
    except ValueError as exc:
        raise TargetRefused("not a valid URL") from exc
    del port
    if parts.scheme not in ("https", "http"):
        raise TargetRefused("only https URLs are accepted")
    if parts.scheme == "http" and not settings.webhook_allow_http:
        raise TargetRefused("only https URLs are accepted (WEBHOOK_ALLOW_HTTP is off)")
    if parts.username or parts.password:
        raise TargetRefused("credentials in the URL are not accepted")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise TargetRefused("the URL has no host")
    names, _ = _networks(settings)
    if host in names:
        return host
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        loopback = host == "localhost" or host.endswith(".localhost")
        if loopback and not settings.webhook_allow_private:
            raise TargetRefused("the host is not allowed (loopback)") from None
        return host
    if not _address_allowed(literal, settings):
        raise TargetRefused("the address is private, loopback or reserved and not allowed")
    return host


async def check_target(url: str, settings: Settings) -> None:
    """Refuse the URL unless its host resolves only to allowed addresses (at delivery time)."""
    host = check_url(url, settings)
    names, _ = _networks(settings)
    if host in names or settings.webhook_allow_private:
        return
    try:
        ipaddress.ip_address(host)
        return  # a literal address was checked by check_url
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TargetRefused(f"the host does not resolve: {exc}") from exc
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not _address_allowed(address, settings):
            raise TargetRefused(f"the host resolves to a refused address ({address})")
