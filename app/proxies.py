"""The client's address behind trusted reverse proxies (X-Forwarded-For, read from the right).

Security decision: `X-Forwarded-For` is written by whoever sends the request, so it is believed
only as far as a chain of trusted proxies vouches for it. Starting from the socket peer, each
hop that is a trusted proxy hands over to the address it says it received the request from (the
right-most entry not yet consumed); the first address that is not a trusted proxy is the client.
Entries further left were written by the client itself and are ignored. When every hop is
trusted, the left-most entry is the client. A malformed entry stops the walk at the last hop
that could be read, so garbage cannot make the service believe an address it was never told by
a trusted proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from app.config import Network

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, proxies: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def client_address(
    peer: str | None, forwarded_for: Iterable[str], proxies: Sequence[Network]
) -> str | None:
    """The client's address: the socket `peer`, or what trusted proxies in front of it say.

    `forwarded_for` holds the values of every X-Forwarded-For header, in order.
    """
    if peer is None or not proxies:
        return peer
    current = _parse(peer)
    if current is None or not _trusted(current, proxies):
        return peer
    hops = [part for value in forwarded_for for part in value.split(",") if part.strip()]
    for entry in reversed(hops):
        address = _parse(entry)
        if address is None:
            break
        current = address
        if not _trusted(current, proxies):
            break
    return str(current)
