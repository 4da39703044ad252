"""Client address selection from the socket peer and X-Forwarded-For."""

import pytest

from services.signalling.client_address import client_address

CLIENT = "203.0.113.7"
PROXY = "192.0.2.10"
PROXY_NET = "192.0.2.0/24"


def test_peer_only() -> None:
    assert client_address(CLIENT, None, ()) == CLIENT


def test_peer_only_with_empty_header() -> None:
    assert client_address(CLIENT, "", (PROXY_NET,)) == CLIENT


def test_no_peer_gives_none() -> None:
    assert client_address(None, CLIENT, (PROXY_NET,)) is None


def test_invalid_peer_gives_none() -> None:
    assert client_address("not-an-address", None, ()) is None


def test_header_ignored_from_untrusted_peer() -> None:
    assert client_address(CLIENT, "198.51.100.99", ()) == CLIENT


def test_header_ignored_when_peer_outside_trusted_net() -> None:
    assert client_address(CLIENT, "198.51.100.99", (PROXY_NET,)) == CLIENT


def test_header_used_from_trusted_cidr() -> None:
    assert client_address(PROXY, CLIENT, (PROXY_NET,)) == CLIENT


def test_header_used_from_trusted_single_address() -> None:
    assert client_address(PROXY, CLIENT, (PROXY,)) == CLIENT


def test_single_trusted_address_is_exact() -> None:
    assert client_address("192.0.2.11", "198.51.100.99", (PROXY,)) == "192.0.2.11"


def test_loopback_proxy_trusted() -> None:
    assert client_address("127.0.0.1", CLIENT, ("127.0.0.0/8",)) == CLIENT


def test_rightmost_untrusted_hop_chosen() -> None:
    # The client forged the first entry, and 198.51.100.20 is the address the outer proxy saw.
    header = "203.0.113.99, 198.51.100.20, 192.0.2.20, 192.0.2.30"

    assert client_address(PROXY, header, (PROXY_NET,)) == "198.51.100.20"


def test_spoofed_left_entries_ignored() -> None:
    header = "127.0.0.1, 192.0.2.50, 203.0.113.7"

    assert client_address(PROXY, header, (PROXY_NET,)) == CLIENT


def test_several_trusted_networks() -> None:
    header = "203.0.113.7, 198.51.100.1, 2001:db8::5"
    trusted = ("198.51.100.0/24", "2001:db8::/32", PROXY)

    assert client_address(PROXY, header, trusted) == CLIENT


def test_all_hops_trusted_gives_leftmost() -> None:
    assert client_address(PROXY, "192.0.2.1, 192.0.2.2", (PROXY_NET,)) == "192.0.2.1"


def test_spaces_and_empty_entries_ignored() -> None:
    assert client_address(PROXY, " ,  203.0.113.7 ,, ", (PROXY_NET,)) == CLIENT


def test_blank_hops_fall_back_to_peer() -> None:
    assert client_address(PROXY, " , ,", (PROXY_NET,)) == PROXY


@pytest.mark.parametrize(
    "header",
    ["junk", "203.0.113.7, junk", "unknown", "203.0.113.7:443", "[2001:db8::7]", "203.0.113.256", "_hidden"],
)
def test_junk_nearest_hop_gives_none(header: str) -> None:
    assert client_address(PROXY, header, (PROXY_NET,)) is None


def test_junk_behind_untrusted_hop_ignored() -> None:
    # Entries left of the client's address were written by the client and are never read.
    assert client_address(PROXY, "junk, 203.0.113.7", (PROXY_NET,)) == CLIENT


def test_junk_header_from_untrusted_peer_ignored() -> None:
    assert client_address(CLIENT, "junk", (PROXY_NET,)) == CLIENT


def test_invalid_trusted_entry_skipped() -> None:
    assert client_address(PROXY, CLIENT, ("not-a-network", PROXY_NET)) == CLIENT


def test_ipv6_peer_only() -> None:
    assert client_address("2001:db8::7", None, ()) == "2001:db8::7"


def test_ipv6_peer_normalized() -> None:
    assert client_address("2001:DB8:0:0::7", None, ()) == "2001:db8::7"


def test_ipv6_trusted_proxy() -> None:
    assert client_address("2001:db8:ffff::1", "2001:db8:1::7", ("2001:db8:ffff::/48",)) == "2001:db8:1::7"


def test_ipv6_client_behind_ipv4_proxy() -> None:
    assert client_address(PROXY, "2001:db8::7", (PROXY_NET,)) == "2001:db8::7"


def test_ipv4_client_behind_ipv6_proxy() -> None:
    assert client_address("::1", CLIENT, ("::1",)) == CLIENT


def test_ipv4_mapped_peer_matches_ipv4_trusted_net() -> None:
    assert client_address("::ffff:192.0.2.10", CLIENT, (PROXY_NET,)) == CLIENT


def test_ipv4_mapped_address_returned_as_ipv4() -> None:
    assert client_address("::ffff:203.0.113.7", None, ()) == CLIENT
    assert client_address(PROXY, "::ffff:203.0.113.7", (PROXY_NET,)) == CLIENT
