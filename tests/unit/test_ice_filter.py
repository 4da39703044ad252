"""Filtering of SDP and trickled candidates for a session that hides its IP."""

import pytest
from aiortc.sdp import SessionDescription
from hypothesis import given
from hypothesis import strategies as st

from services.signalling.ice_filter import (
    candidate_type,
    filter_candidate_message,
    filter_sdp,
    filter_signal,
    hide_relay_candidate,
    is_relay_candidate,
    is_relay_candidate_message,
)

# Addresses of the hiding client (host, IPv6 host, mDNS name, server-reflexive, peer-reflexive) that must
# never reach the partner, and the TURN relay's addresses, which may.
PRIVATE_ADDRESSES = (
    "192.168.1.20",
    "2001:db8::20",
    "4a8b2c2e-4b7d-4d3a-9d5b-1c2d3e4f5a6b.local",
    "203.0.113.5",
    "198.51.100.77",
)
RELAY_V4 = "198.51.100.9"
RELAY_V6 = "2001:db8:ffff::9"

HOST = "candidate:1467250027 1 udp 2122260223 192.168.1.20 54321 typ host generation 0 network-id 1"
HOST_V6 = "candidate:2981721428 1 udp 2122262783 2001:db8::20 54322 typ host generation 0 network-id 2"
HOST_MDNS = (
    "candidate:3344442277 1 udp 2122131711 4a8b2c2e-4b7d-4d3a-9d5b-1c2d3e4f5a6b.local 54323 typ host generation 0"
)
HOST_TCP = "candidate:1467250028 1 tcp 1518280447 192.168.1.20 9 typ host tcptype active generation 0"
SRFLX = "candidate:842163049 1 udp 1686052607 203.0.113.5 54321 typ srflx raddr 192.168.1.20 rport 54321 generation 0"
PRFLX = "candidate:1111111111 1 udp 1853824767 198.51.100.77 60000 typ prflx raddr 192.168.1.20 rport 54321"
RELAY = "candidate:3402893123 1 udp 41885439 198.51.100.9 3478 typ relay raddr 203.0.113.5 rport 54321 generation 0"
RELAY_V6_CANDIDATE = (
    "candidate:3402893124 1 udp 41885695 2001:db8:ffff::9 3479 typ relay raddr 2001:db8::20 rport 54322"
)
HIDDEN_RELAY = "candidate:3402893123 1 udp 41885439 198.51.100.9 3478 typ relay raddr 0.0.0.0 rport 9 generation 0"
HIDDEN_RELAY_V6 = "candidate:3402893124 1 udp 41885695 2001:db8:ffff::9 3479 typ relay raddr :: rport 9"

CHROME_OFFER_LINES = [
    "v=0",
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0",
    "a=msid-semantic: WMS",
    "m=audio 54321 UDP/TLS/RTP/SAVPF 111 0",
    "c=IN IP4 203.0.113.5",
    "a=rtcp:54321 IN IP4 203.0.113.5",
    "a=" + HOST,
    "a=" + HOST_V6,
    "a=" + HOST_MDNS,
    "a=" + HOST_TCP,
    "a=" + SRFLX,
    "a=" + PRFLX,
    "a=" + RELAY,
    "a=" + RELAY_V6_CANDIDATE,
    "a=end-of-candidates",
    "a=ice-ufrag:Xq3b",
    "a=ice-pwd:0123456789abcdefghijklmn",
    "a=ice-options:trickle",
    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32),
    "a=setup:actpass",
    "a=mid:0",
    "a=sendrecv",
    "a=rtcp-mux",
    "a=rtpmap:111 opus/48000/2",
    "a=rtpmap:0 PCMU/8000",
]
CHROME_OFFER = "\r\n".join(CHROME_OFFER_LINES) + "\r\n"


def candidate_lines(sdp: str) -> list[str]:
    return [line for line in sdp.splitlines() if line.startswith("a=candidate:")]


def test_sdp_keeps_only_relay_candidates() -> None:
    filtered = filter_sdp(CHROME_OFFER)

    relay_lines = candidate_lines(filtered)
    assert len(relay_lines) == 2
    assert all(candidate_type(line) == "relay" for line in relay_lines)


@pytest.mark.parametrize("address", PRIVATE_ADDRESSES)
def test_sdp_drops_every_client_address(address: str) -> None:
    assert address in CHROME_OFFER
    assert address not in filter_sdp(CHROME_OFFER)


def test_sdp_blanks_relay_related_address() -> None:
    relay_lines = candidate_lines(filter_sdp(CHROME_OFFER))

    assert relay_lines[0] == "a=" + HIDDEN_RELAY
    assert relay_lines[1] == "a=" + HIDDEN_RELAY_V6


def test_sdp_blanks_connection_and_rtcp_address() -> None:
    lines = filter_sdp(CHROME_OFFER).splitlines()

    assert "c=IN IP4 0.0.0.0" in lines
    assert "a=rtcp:54321 IN IP4 0.0.0.0" in lines


def test_sdp_keeps_connection_of_relay_candidate() -> None:
    sdp = CHROME_OFFER.replace("c=IN IP4 203.0.113.5", f"c=IN IP4 {RELAY_V4}")

    assert f"c=IN IP4 {RELAY_V4}" in filter_sdp(sdp).splitlines()


def test_sdp_blanks_ipv6_connection() -> None:
    sdp = CHROME_OFFER.replace("c=IN IP4 203.0.113.5", "c=IN IP6 2001:db8::20")

    assert "c=IN IP6 ::" in filter_sdp(sdp).splitlines()


def test_sdp_blanks_public_origin_address() -> None:
    sdp = CHROME_OFFER.replace("o=- 4611731400430051336 2 IN IP4 127.0.0.1", "o=- 46117 2 IN IP4 203.0.113.5")

    assert "o=- 46117 2 IN IP4 127.0.0.1" in filter_sdp(sdp).splitlines()


def test_sdp_keeps_loopback_origin() -> None:
    assert "o=- 4611731400430051336 2 IN IP4 127.0.0.1" in filter_sdp(CHROME_OFFER).splitlines()


def test_sdp_keeps_other_lines_in_order() -> None:
    filtered = filter_sdp(CHROME_OFFER).splitlines()
    changed = {"c=", "a=rtcp:", "a=candidate:"}

    expected = [line for line in CHROME_OFFER_LINES if not line.startswith(tuple(changed))]
    assert [line for line in filtered if not line.startswith(tuple(changed))] == expected
    assert "a=end-of-candidates" in filtered


def test_sdp_keeps_crlf_endings() -> None:
    filtered = filter_sdp(CHROME_OFFER)

    assert filtered.endswith("\r\n")
    assert "\n" not in filtered.replace("\r\n", "")


def test_sdp_keeps_lf_endings() -> None:
    filtered = filter_sdp(CHROME_OFFER.replace("\r\n", "\n"))

    assert "\r" not in filtered
    assert filtered.endswith("\n")


def test_sdp_without_candidates_unchanged() -> None:
    sdp = "\r\n".join(line for line in CHROME_OFFER_LINES if "candidate" not in line and "203.0.113.5" not in line)

    assert filter_sdp(sdp) == sdp


def test_sdp_filter_is_idempotent() -> None:
    once = filter_sdp(CHROME_OFFER)

    assert filter_sdp(once) == once


def test_firefox_offer_keeps_relay_only() -> None:
    sdp = "\r\n".join(
        [
            "v=0",
            "o=mozilla...THIS_IS_SDPARTA-99.0 7393327003216296458 0 IN IP4 0.0.0.0",
            "s=-",
            "t=0 0",
            "m=audio 9 UDP/TLS/RTP/SAVPF 109 0",
            "c=IN IP4 0.0.0.0",
            "a=candidate:0 1 UDP 2122252543 192.168.1.20 50000 typ host",
            "a=candidate:2 1 TCP 2105524479 192.168.1.20 9 typ host tcptype active",
            "a=candidate:1 1 UDP 1686052863 203.0.113.5 50000 typ srflx raddr 192.168.1.20 rport 50000",
            "a=candidate:3 1 UDP 92217343 198.51.100.9 61000 typ relay raddr 203.0.113.5 rport 50000",
            "a=end-of-candidates",
            "a=sendrecv",
        ]
    )

    filtered = filter_sdp(sdp)

    assert candidate_lines(filtered) == [
        "a=candidate:3 1 UDP 92217343 198.51.100.9 61000 typ relay raddr 0.0.0.0 rport 9"
    ]
    assert "192.168.1.20" not in filtered
    assert "203.0.113.5" not in filtered
    assert "o=mozilla...THIS_IS_SDPARTA-99.0 7393327003216296458 0 IN IP4 0.0.0.0" in filtered


def test_filtered_sdp_parses_in_aiortc() -> None:
    description = SessionDescription.parse(filter_sdp(CHROME_OFFER))

    candidates = description.media[0].ice_candidates
    assert [candidate.type for candidate in candidates] == ["relay", "relay"]
    assert {candidate.relatedAddress for candidate in candidates} == {"0.0.0.0", "::"}


@pytest.mark.parametrize(
    "line",
    [
        "a=candidate:1 1 udp 1 192.168.1.20 5 TYP HOST",
        "a=candidate:1 1 udp 1 192.168.1.20 5 typ host generation 0 typ relay",
        "a=candidate:1 1 udp 1 192.168.1.20 5 relay typ",
        "a=candidate:1 1 udp 192.168.1.20 5 typ relay",
        "a=CANDIDATE:1 1 udp 1 192.168.1.20 5 typ host",
        "a=candidate:1 1 udp 1 198.51.100.9 5 typ relay raddr",
        "a=candidate:1 1 udp 1 198.51.100.9 5 typ unknown raddr 192.168.1.20 rport 5",
    ],
)
def test_sdp_drops_malformed_or_non_relay_lines(line: str) -> None:
    sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" + line + "\r\n"

    filtered = filter_sdp(sdp)

    assert "192.168.1.20" not in filtered
    assert candidate_lines(filtered) == []


def test_sdp_splits_on_every_line_break() -> None:
    # aiortc splits SDP with str.splitlines, which also breaks on \x1c and \u2028.
    sdp = f"v=0\r\na={RELAY}\x1ca={HOST}\r\na={RELAY}\u2028a={SRFLX}\r\n"

    filtered = filter_sdp(sdp)

    assert "192.168.1.20" not in filtered
    assert "203.0.113.5" not in filtered


def test_sdp_empty_string() -> None:
    assert filter_sdp("") == ""


@given(st.text())
def test_sdp_filter_never_raises_on_junk(junk: str) -> None:
    assert isinstance(filter_sdp(junk), str)


candidate_types = st.sampled_from(["host", "srflx", "prflx", "relay", "HOST", "Relay", "bogus"])
client_addresses = st.sampled_from(PRIVATE_ADDRESSES)


@given(st.lists(st.tuples(candidate_types, client_addresses, st.booleans()), max_size=12))
def test_sdp_output_holds_no_client_address(candidates: list[tuple[str, str, bool]]) -> None:
    lines = ["v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 203.0.113.5"]
    for index, (kind, client_address, with_raddr) in enumerate(candidates):
        address = RELAY_V4 if kind.lower() == "relay" else client_address
        line = f"a=candidate:{index} 1 udp {index + 1} {address} {1000 + index} typ {kind}"
        if with_raddr:
            line += f" raddr {client_address} rport 5000"
        lines.append(line)

    filtered = filter_sdp("\r\n".join(lines) + "\r\n")

    for address in PRIVATE_ADDRESSES:
        assert address not in filtered
    assert all(candidate_type(line) == "relay" for line in candidate_lines(filtered))


def message(candidate: object) -> dict[str, object]:
    return {"candidate": candidate, "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "Xq3b"}


@pytest.mark.parametrize("candidate", [HOST, HOST_V6, HOST_MDNS, HOST_TCP, SRFLX, PRFLX])
def test_trickle_drops_non_relay(candidate: str) -> None:
    assert filter_candidate_message(message(candidate)) is None
    assert not is_relay_candidate_message(message(candidate))


def test_trickle_keeps_relay_with_hidden_raddr() -> None:
    filtered = filter_candidate_message(message(RELAY))

    assert filtered == message(HIDDEN_RELAY)
    assert is_relay_candidate_message(message(RELAY))


def test_trickle_keeps_ipv6_relay() -> None:
    filtered = filter_candidate_message(message(RELAY_V6_CANDIDATE))

    assert filtered is not None
    assert filtered["candidate"] == HIDDEN_RELAY_V6


def test_trickle_keeps_end_of_candidates() -> None:
    assert filter_candidate_message(message("")) == message("")


@pytest.mark.parametrize("candidate", [None, 42, ["candidate"], {"a": 1}])
def test_trickle_drops_non_string_candidate(candidate: object) -> None:
    assert filter_candidate_message(message(candidate)) is None
    assert not is_relay_candidate_message(message(candidate))


def test_trickle_drops_missing_candidate() -> None:
    assert filter_candidate_message({"sdpMid": "0", "sdpMLineIndex": 0}) is None


def test_trickle_accepts_sdp_attribute_form() -> None:
    filtered = filter_candidate_message(message("a=" + RELAY))

    assert filtered == message(HIDDEN_RELAY)


def test_trickle_accepts_bare_aiortc_form() -> None:
    bare = RELAY.removeprefix("candidate:")

    filtered = filter_candidate_message(message(bare))

    assert filtered is not None
    assert filtered["candidate"] == bare.replace("raddr 203.0.113.5 rport 54321", "raddr 0.0.0.0 rport 9")


def test_trickle_drops_candidate_with_second_line() -> None:
    assert filter_candidate_message(message(RELAY + "\r\na=" + HOST)) is None


@given(st.text())
def test_trickle_never_raises_on_junk(junk: str) -> None:
    result = filter_candidate_message(message(junk))

    assert result is None or isinstance(result["candidate"], str)


def test_relay_helpers_on_single_candidates() -> None:
    assert is_relay_candidate(RELAY)
    assert not is_relay_candidate(SRFLX)
    assert candidate_type("junk") is None
    assert hide_relay_candidate(HOST) is None


def test_signal_offer_gets_filtered_sdp() -> None:
    forward, data = filter_signal("offer", {"type": "offer", "sdp": CHROME_OFFER})

    assert forward
    assert data == {"type": "offer", "sdp": filter_sdp(CHROME_OFFER)}


def test_signal_answer_gets_filtered_sdp() -> None:
    forward, data = filter_signal("answer", {"type": "answer", "sdp": CHROME_OFFER})

    assert forward
    assert isinstance(data, dict)
    assert "192.168.1.20" not in data["sdp"]


@pytest.mark.parametrize("candidate", [HOST, SRFLX, PRFLX, HOST_MDNS])
def test_signal_drops_non_relay_candidate(candidate: str) -> None:
    forward, _ = filter_signal("candidate", message(candidate))

    assert not forward


def test_signal_keeps_relay_candidate() -> None:
    assert filter_signal("candidate", message(RELAY)) == (True, message(HIDDEN_RELAY))


@pytest.mark.parametrize(("kind", "data"), [("candidate", None), ("candidate", message("")), ("need_offer", None)])
def test_signal_passes_end_and_need_offer(kind: str, data: object) -> None:
    assert filter_signal(kind, data) == (True, data)


@pytest.mark.parametrize(("kind", "data"), [("offer", "v=0"), ("offer", {"type": "offer"}), ("candidate", "x")])
def test_signal_drops_malformed_payload(kind: str, data: object) -> None:
    forward, _ = filter_signal(kind, data)

    assert not forward
