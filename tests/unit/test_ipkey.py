"""ip_key: HMAC-SHA256 over the normalized address, IPv6 reduced to its /64."""

import hashlib
import hmac
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.ipkey import LOG_PREFIX_CHARS, ip_key, normalize_address, short_key

SECRET = b"unit-test-secret-0123456789abcdef"


def expected_key(secret: bytes, normalized: str) -> str:
    return hmac.new(secret, normalized.encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("address", "normalized"),
    [
        ("192.0.2.1", "192.0.2.1"),
        (" 198.51.100.7\n", "198.51.100.7"),
        ("203.0.113.255", "203.0.113.255"),
        ("127.0.0.1", "127.0.0.1"),
        ("2001:db8::1", "2001:db8::/64"),
        ("2001:DB8:0:0:abcd:ef01:2345:6789", "2001:db8::/64"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("::1", "::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
    ],
)
def test_normalize_address(address: str, normalized: str) -> None:
    assert normalize_address(address) == normalized


@pytest.mark.parametrize("address", ["192.0.2.1", "2001:db8::1", "2001:db8:0:1::99", "::ffff:203.0.113.9"])
def test_key_is_hmac_of_normalized_address(address: str) -> None:
    assert ip_key(SECRET, address) == expected_key(SECRET, normalize_address(address))


def test_ipv4_key_matches_hmac_directly() -> None:
    assert ip_key(SECRET, "198.51.100.23") == hmac.new(SECRET, b"198.51.100.23", hashlib.sha256).hexdigest()


def test_ipv6_key_matches_hmac_of_prefix() -> None:
    assert ip_key(SECRET, "2001:db8:aa:bb::1") == hmac.new(SECRET, b"2001:db8:aa:bb::/64", hashlib.sha256).hexdigest()


def test_key_is_64_hex_characters() -> None:
    key = ip_key(SECRET, "192.0.2.1")

    assert len(key) == 64
    assert int(key, 16) >= 0


def test_key_is_stable() -> None:
    assert ip_key(SECRET, "192.0.2.1") == ip_key(SECRET, "192.0.2.1")


@given(st.integers(min_value=0, max_value=2**64 - 1), st.integers(min_value=0, max_value=2**64 - 1))
def test_same_ipv6_64_shares_key(first_host: int, second_host: int) -> None:
    network = int(ipaddress.IPv6Address("2001:db8:1234:5678::"))
    first = str(ipaddress.IPv6Address(network + first_host))
    second = str(ipaddress.IPv6Address(network + second_host))

    assert ip_key(SECRET, first) == ip_key(SECRET, second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("2001:db8:0:1::1", "2001:db8:0:2::1"),
        ("2001:db8::ffff:ffff:ffff:ffff", "2001:db8:0:1::"),
        ("2001:db8:0:ffff::1", "2001:db8:1:ffff::1"),
        ("2001:db8::1", "2001:db9::1"),
    ],
    ids=["next_prefix", "adjacent_addresses", "different_48", "different_32"],
)
def test_different_ipv6_64_different_key(first: str, second: str) -> None:
    assert ip_key(SECRET, first) != ip_key(SECRET, second)


@pytest.mark.parametrize("address", ["192.0.2.1", "198.51.100.200", "203.0.113.5", "127.0.0.1"])
def test_ipv4_mapped_ipv6_equals_ipv4(address: str) -> None:
    assert ip_key(SECRET, f"::ffff:{address}") == ip_key(SECRET, address)


def test_different_ipv4_addresses_different_keys() -> None:
    assert ip_key(SECRET, "192.0.2.1") != ip_key(SECRET, "192.0.2.2")


def test_ipv4_differs_from_its_ipv6_embedding() -> None:
    # Only ::ffff:0:0/96 counts as IPv4. A 6to4 address that embeds the same IPv4 address gets its own key.
    assert ip_key(SECRET, "2002:c000:201::1") != ip_key(SECRET, "192.0.2.1")


@pytest.mark.parametrize(
    "address",
    ["", " ", "not-an-ip", "192.0.2", "192.0.2.256", "192.0.2.01", "192.0.2.1/24", "2001:db8::g", "2001:db8:::1",
     "192.0.2.1:443", "[2001:db8::1]"],
)
def test_invalid_address_raises_value_error(address: str) -> None:
    with pytest.raises(ValueError):
        ip_key(SECRET, address)


def test_different_secrets_different_keys() -> None:
    other = b"another-secret-0123456789abcdef!"

    assert ip_key(SECRET, "192.0.2.1") != ip_key(other, "192.0.2.1")
    assert ip_key(SECRET, "2001:db8::1") != ip_key(other, "2001:db8::1")


def test_short_key_length() -> None:
    key = ip_key(SECRET, "192.0.2.1")

    assert LOG_PREFIX_CHARS == 8
    assert short_key(key) == key[:8]
    assert len(short_key(key)) == 8


def test_short_key_of_short_value_unchanged() -> None:
    assert short_key("abc") == "abc"
