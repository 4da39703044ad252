"""The client's address: the socket peer, or X-Forwarded-For when the peer is a trusted proxy."""

import ipaddress


def client_address(peer: str | None, forwarded_for: str | None, trusted_proxies: tuple[str, ...]) -> str | None:
    """Pick the address to key and locate a client by; None when no valid address is known.

    With a trusted peer, the right-most untrusted entry of X-Forwarded-For is the client,
    because every trusted proxy appends the address it received the request from.
    """
    if peer is None:
        return None
    if not forwarded_for or not _trusted(peer, trusted_proxies):
        return _valid(peer)

    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _valid(hop)
        if address is None:
            return None
        if not _trusted(address, trusted_proxies):
            return address
    return _valid(hops[0]) if hops else _valid(peer)


def _valid(address: str) -> str | None:
    parsed = _parse(address)
    return None if parsed is None else str(parsed)


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Parse an address, unwrapping IPv4-mapped IPv6 (::ffff:a.b.c.d) so it matches IPv4 networks."""
    try:
        parsed = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed


def _trusted(address: str, trusted_proxies: tuple[str, ...]) -> bool:
    parsed = _parse(address)
    if parsed is None:
        return False
    for proxy in trusted_proxies:
        try:
            if parsed in ipaddress.ip_network(proxy, strict=False):
                return True
        except ValueError:
            continue
    return False
