"""The visitor's address behind trusted proxies: read from the right, past our own hops."""

from __future__ import annotations

import pytest

from clickthru.proxies import TrustedProxies

PROXIES = TrustedProxies(["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"])


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "forwarded", "client"),
    [
        # An untrusted peer is the client, whatever it says.
        ("203.0.113.9", "198.51.100.1", None, "203.0.113.9"),
        ("203.0.113.9", None, "for=198.51.100.1", "203.0.113.9"),
        # A trusted proxy names the visitor; what the visitor wrote before it is not read.
        ("10.1.2.3", "198.51.100.1", None, "198.51.100.1"),
        ("10.1.2.3", "6.6.6.6, 198.51.100.1", None, "198.51.100.1"),
        # Hops that are proxies of ours are walked past.
        ("10.1.2.3", "6.6.6.6, 198.51.100.1, 192.0.2.7, 10.9.9.9", None, "198.51.100.1"),
        ("10.1.2.3", "198.51.100.1:4711", None, "198.51.100.1"),
        ("10.1.2.3", "2001:db8::5, 2a00:1450::1", None, "2a00:1450::1"),
        # Forwarded (RFC 7239), quoted IPv6 with a port, several elements.
        ("10.1.2.3", None, 'for="[2a00:1450::1]:4711";proto=https', "2a00:1450::1"),
        ("10.1.2.3", None, "for=6.6.6.6, for=198.51.100.1;by=10.0.0.1", "198.51.100.1"),
        # Nothing said, or nothing to key on: the last address known.
        ("10.1.2.3", None, None, "10.1.2.3"),
        ("10.1.2.3", "unknown", None, "10.1.2.3"),
        ("10.1.2.3", "198.51.100.1, _hidden", None, "10.1.2.3"),
        ("10.1.2.3", "10.0.0.1", None, "10.0.0.1"),  # every hop ours
        ("not-an-address", "198.51.100.1", None, "not-an-address"),
    ],
)
def test_the_visitor_is_the_first_address_from_the_right_that_is_no_proxy_of_ours(
    peer: str, forwarded_for: str | None, forwarded: str | None, client: str
) -> None:
    assert PROXIES.client(peer, forwarded_for, forwarded) == client


SHOP = "198.51.100.77"  # a shop's first-party proxy
WITH_SHOPS = TrustedProxies(["10.0.0.0/8"], [SHOP])


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "through_shop"),
    [
        (SHOP, None, True),  # the shop's proxy itself, whatever it says
        (SHOP, "203.0.113.1", True),
        ("10.0.0.1", f"203.0.113.1, {SHOP}", True),  # through our front, from a shop
        ("10.0.0.1", "203.0.113.1", False),  # our front, from anyone else
        ("10.0.0.1", f"{SHOP}, 203.0.113.1", False),  # said by the client: not believed
        ("203.0.113.1", SHOP, False),  # said by an untrusted peer
        ("203.0.113.1", None, False),
    ],
)
def test_a_shops_proxy_is_known_wherever_it_is_in_the_trusted_chain(
    peer: str, forwarded_for: str | None, through_shop: bool
) -> None:
    assert WITH_SHOPS.through_first_party(peer, forwarded_for, None) is through_shop
    assert WITH_SHOPS.client(SHOP, "203.0.113.1", None) == "203.0.113.1"


def test_entries_that_are_no_address_or_network_are_refused() -> None:
    with pytest.raises(ValueError, match=r"shop\.example"):
        TrustedProxies(["shop.example"])
