"""The client address behind trusted proxies: the walk from the right, case by case."""

from __future__ import annotations

import ipaddress

import pytest

from app.config import Network
from app.proxies import client_address

PROXIES: list[Network] = [
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("2001:db8:ffff::/48"),
]


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        ("192.0.2.1", ["1.1.1.1"], "192.0.2.1"),  # an untrusted peer is the client
        ("10.0.0.1", [], "10.0.0.1"),  # a trusted peer that forwards nothing
        ("10.0.0.1", ["192.0.2.7"], "192.0.2.7"),
        ("10.0.0.1", ["6.6.6.6, 192.0.2.7"], "192.0.2.7"),  # the client's own entry is ignored
        ("10.0.0.1", ["6.6.6.6", "192.0.2.7"], "192.0.2.7"),  # several headers join in order
        ("10.0.0.1", ["192.0.2.7, 10.1.1.1, 10.2.2.2"], "192.0.2.7"),  # trusted hops skipped
        ("10.0.0.1", ["10.1.1.1, 10.2.2.2"], "10.1.1.1"),  # all trusted: the left-most
        ("10.0.0.1", ["192.0.2.7, garbage"], "10.0.0.1"),  # stop at the last readable hop
        ("10.0.0.1", ["192.0.2.7:5555"], "192.0.2.7"),  # a port is dropped
        ("10.0.0.1", ["[2001:db8::7]:443"], "2001:db8::7"),
        ("10.0.0.1", [" , 192.0.2.7 ,"], "192.0.2.7"),  # empty entries are skipped
        ("::ffff:10.0.0.1", ["192.0.2.7"], "192.0.2.7"),  # IPv4-mapped peer
        ("2001:db8:ffff::1", ["2001:db8::9"], "2001:db8::9"),
        ("not-an-address", ["192.0.2.7"], "not-an-address"),
        (None, ["192.0.2.7"], None),
    ],
)
def test_client_address_walks_trusted_hops_from_the_right(
    peer: str | None, headers: list[str], expected: str | None
) -> None:
    assert client_address(peer, headers, PROXIES) == expected


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_address("10.0.0.1", ["192.0.2.7"], []) == "10.0.0.1"
