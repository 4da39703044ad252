"""Pseudonymous keys for client addresses: HMAC-SHA256(secret, address), IPv6 reduced to its /64."""

import hashlib
import hmac
import ipaddress

# Log lines show at most this many hex characters of an ip_key: enough to follow one
# client through the logs, far too few to match a key against a list of addresses.
LOG_PREFIX_CHARS = 8


def normalize_address(address: str) -> str:
    """Return the canonical form of an address; IPv6 is cut to its /64 network.

    One IPv6 subscriber usually owns a whole /64, so keying the full address would let
    a banned person walk past a ban by changing the interface identifier.
    """
    parsed = ipaddress.ip_address(address.strip())
    if isinstance(parsed, ipaddress.IPv6Address):
        mapped = parsed.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        network = ipaddress.IPv6Network((parsed, 64), strict=False)
        return str(network.network_address) + "/64"
    return str(parsed)


def ip_key(secret: bytes, address: str) -> str:
    """Derive the hex ip_key of an address; raises ValueError for an invalid address."""
    normalized = normalize_address(address)
    return hmac.new(secret, normalized.encode(), hashlib.sha256).hexdigest()


def short_key(key: str) -> str:
    """Cut an ip_key to the prefix that logs may carry."""
    return key[:LOG_PREFIX_CHARS]
