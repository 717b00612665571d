"""Who the client is, behind proxies the operator trusts.

A proxy appends the address it saw to ``X-Forwarded-For`` (or adds a ``Forwarded: for=``
element); whatever came before that was written by someone else, possibly by the client.
So the address is read from the right: past every hop that is itself a trusted proxy, the
first address is the visitor. From a peer that is not trusted, the headers are ignored and
the peer is the client.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# for=192.0.2.1, for="[2001:db8::1]:4711", for="_hidden" (RFC 7239)
_FORWARDED_FOR = re.compile(r'(?i)(?:^|[;,\s])for\s*=\s*"?([^";,]*)"?')


def networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Addresses and networks ("10.0.0.0/8", "::1"); raises ValueError on anything else."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("["):  # [v6] or [v6]:port
        text = text[1 : text.find("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class TrustedProxies:
    def __init__(self, entries: Iterable[str]) -> None:
        self.networks = networks(entries)

    def trusts(self, peer: str) -> bool:
        address = _address(peer)
        return address is not None and any(address in network for network in self.networks)

    def client(self, peer: str, forwarded_for: str | None, forwarded: str | None) -> str:
        """The visitor's address: the peer's, unless the peer is trusted and says whom it
        forwards for (X-Forwarded-For first, else Forwarded)."""
        if not self.trusts(peer):
            return peer
        if forwarded_for:
            hops = forwarded_for.split(",")
        elif forwarded:
            hops = _FORWARDED_FOR.findall(forwarded)
        else:
            return peer
        client = peer
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:  # "unknown", an obfuscated name: nothing to key on past it
                return client
            client = str(address)
            if not any(address in network for network in self.networks):
                break
        return client

    def forwarded(self, peer: str, has_forwarding_header: bool) -> bool:
        """The request came through a trusted proxy that forwarded it for someone else."""
        return has_forwarding_header and self.trusts(peer)
