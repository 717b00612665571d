"""Who the client is, behind proxies the operator trusts.

A proxy appends the address it saw to ``X-Forwarded-For`` (or adds a ``Forwarded: for=``
element); whatever came before that was written by someone else, possibly by the client.
So the address is read from the right: past every hop that is itself a trusted proxy, the
first address is the visitor. From a peer that is not trusted, the headers are ignored and
the peer is the client.

Two kinds of proxies are trusted: the operator's own (TLS terminators, load balancers), and
the shops' first-party proxies, which serve the collector under a path of the shop's site.
A request that came through a shop's proxy reaches only the public event paths.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# for=192.0.2.1, for="[2001:db8::1]:4711", for="_hidden" (RFC 7239)
_FORWARDED_FOR = re.compile(r'(?i)(?:^|[;,\s])for\s*=\s*"?([^";,]*)"?')


def networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Addresses and networks ("10.0.0.0/8", "::1"); raises ValueError on anything else."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("["):  # [v6] or [v6]:port
        text = text[1 : text.find("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _within(address: Address, among: tuple[Network, ...]) -> bool:
    return any(address in network for network in among)


class TrustedProxies:
    def __init__(self, trusted: Iterable[str], first_party: Iterable[str] = ()) -> None:
        self.first_party = networks(first_party)
        self.trusted = networks(trusted) + self.first_party

    def client(self, peer: str, forwarded_for: str | None, forwarded: str | None) -> str:
        """The visitor's address: the peer's, unless the peer is trusted and says whom it
        forwards for (X-Forwarded-For first, else Forwarded)."""
        return self._walk(peer, forwarded_for, forwarded)[0]

    def through_first_party(
        self, peer: str, forwarded_for: str | None, forwarded: str | None
    ) -> bool:
        """The request passed a shop's first-party proxy on its way (as far as trusted
        hops tell)."""
        proxies = self._walk(peer, forwarded_for, forwarded)[1]
        return any(_within(proxy, self.first_party) for proxy in proxies)

    def _walk(
        self, peer: str, forwarded_for: str | None, forwarded: str | None
    ) -> tuple[str, list[Address]]:
        """The client, and the trusted proxies it came through (the peer first)."""
        if not self.trusted:  # no proxy trusted (the default): the peer, unparsed
            return peer, []
        address = _address(peer)
        if address is None or not _within(address, self.trusted):
            return peer, []
        proxies = [address]
        if forwarded_for:
            hops = forwarded_for.split(",")
        elif forwarded:
            hops = _FORWARDED_FOR.findall(forwarded)
        else:
            return peer, proxies
        client = peer
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:  # "unknown", an obfuscated name: nothing to key on past it
                break
            client = str(address)
            if not _within(address, self.trusted):
                break
            proxies.append(address)
        return client, proxies
