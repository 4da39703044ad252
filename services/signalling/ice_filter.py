"""Address filtering for sessions that hide their IP: keep only relay candidates in the SDP and in
trickled candidates, and blank the other places where a description names an address.

The page already gathers relay candidates only (iceTransportPolicy "relay"), so this module is the
gateway's backstop for clients that did not. Every function takes any string and returns a filtered result
without raising.
"""

import ipaddress
from collections.abc import Mapping

RELAY_TYPE = "relay"

# Placeholders for an address that must not be shown, as RFC 8839 section 5.1 prescribes for a hidden
# related address ("0.0.0.0" or "::", port 9) and as browsers write in c= before gathering.
UNSPECIFIED_IPV4 = "0.0.0.0"
UNSPECIFIED_IPV6 = "::"
DISCARD_PORT = "9"

# A candidate attribute: candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type>
# followed by name/value extension pairs (RFC 8839 section 5.1).
CANDIDATE_PREFIX = "candidate:"
TYP_INDEX = 6
TYPE_INDEX = 7
MIN_CANDIDATE_TOKENS = 8
ADDRESS_INDEX = 4


def candidate_type(candidate: str) -> str | None:
    """Return the lower-case type of a candidate attribute (`a=candidate:…`, `candidate:…` or bare), or None
    when it is malformed."""
    tokens = _candidate_tokens(candidate)
    if tokens is None:
        return None
    return tokens[TYPE_INDEX].lower()


def is_relay_candidate(candidate: str) -> bool:
    return candidate_type(candidate) == RELAY_TYPE


def hide_relay_candidate(candidate: str) -> str | None:
    """Return a relay candidate with its related address blanked, or None when it is not a well-formed relay
    candidate.

    A relay candidate's raddr is the client's address as the TURN server saw it, so it must go too.
    """
    tokens = _candidate_tokens(candidate)
    if tokens is None or tokens[TYPE_INDEX].lower() != RELAY_TYPE:
        return None

    extensions = tokens[MIN_CANDIDATE_TOKENS:]
    if len(extensions) % 2:
        return None
    placeholder = _unspecified_like(tokens[ADDRESS_INDEX])
    for index in range(MIN_CANDIDATE_TOKENS, len(tokens), 2):
        name = tokens[index].lower()
        if name == "raddr":
            tokens[index + 1] = placeholder
        elif name == "rport":
            tokens[index + 1] = DISCARD_PORT
    return " ".join(tokens)


def filter_candidate_message(data: Mapping[str, object]) -> dict[str, object] | None:
    """Return a trickled candidate (`{candidate, sdpMid, sdpMLineIndex}`) fit to forward for a hiding session,
    or None to drop it.

    An empty `candidate` string is the browsers' end-of-candidates marker and passes unchanged.
    """
    candidate = data.get("candidate")
    if not isinstance(candidate, str):
        return None
    if candidate == "":
        return dict(data)

    hidden = hide_relay_candidate(candidate)
    if hidden is None:
        return None
    return {**data, "candidate": hidden}


def is_relay_candidate_message(data: Mapping[str, object]) -> bool:
    """Tell whether a trickled candidate carries a relay candidate."""
    candidate = data.get("candidate")
    return isinstance(candidate, str) and is_relay_candidate(candidate)


def filter_signal(kind: str, data: object) -> tuple[bool, object]:
    """Filter one `signal` payload sent by a session that hides its IP and return (forward, data).

    Offers and answers get their SDP filtered, a candidate that is not relay is dropped (forward is False),
    and null (end of candidates) and other kinds pass unchanged.
    """
    if kind in ("offer", "answer"):
        if not isinstance(data, Mapping) or not isinstance(data.get("sdp"), str):
            return False, data
        return True, {**data, "sdp": filter_sdp(data["sdp"])}
    if kind == "candidate" and data is not None:
        if not isinstance(data, Mapping):
            return False, data
        filtered = filter_candidate_message(data)
        return filtered is not None, filtered
    return True, data


def filter_sdp(sdp: str) -> str:
    """Remove every non-relay candidate from an SDP and blank c=, a=rtcp and o= addresses that belong to no
    relay candidate."""
    lines = sdp.splitlines()
    relay_addresses = _relay_addresses(lines)

    output_lines: list[str] = []
    for line in lines:
        filtered = _filter_line(line, relay_addresses)
        if filtered is not None:
            output_lines.append(filtered)

    separator = "\r\n" if "\r\n" in sdp or not sdp else "\n"
    ending = separator if sdp.endswith(("\n", "\r")) else ""
    return separator.join(output_lines) + ending


def _filter_line(line: str, relay_addresses: frozenset[str]) -> str | None:
    if _is_candidate_line(line):
        hidden = hide_relay_candidate(line)
        return None if hidden is None else "a=" + _strip_attribute_prefix(hidden)
    if line.startswith("c="):
        return _blank_connection(line, relay_addresses)
    if line.lower().startswith("a=rtcp:"):
        return _blank_rtcp(line, relay_addresses)
    if line.startswith("o="):
        return _blank_origin(line)
    return line


def _relay_addresses(lines: list[str]) -> frozenset[str]:
    addresses: set[str] = set()
    for line in lines:
        if _is_candidate_line(line):
            tokens = _candidate_tokens(line)
            if tokens is not None and tokens[TYPE_INDEX].lower() == RELAY_TYPE:
                addresses.add(tokens[ADDRESS_INDEX])
    return frozenset(addresses)


def _blank_connection(line: str, relay_addresses: frozenset[str]) -> str:
    # c=<nettype> <addrtype> <connection-address>
    fields = line[2:].split()
    if len(fields) == 3 and fields[2] in relay_addresses:
        return line
    return "c=IN IP6 ::" if _has_ipv6_addrtype(fields) else "c=IN IP4 0.0.0.0"


def _blank_rtcp(line: str, relay_addresses: frozenset[str]) -> str:
    # a=rtcp:<port> [<nettype> <addrtype> <connection-address>] (RFC 3605)
    fields = line[len("a=rtcp:") :].split()
    port = fields[0] if fields and fields[0].isdigit() else DISCARD_PORT
    if len(fields) == 1:
        return f"a=rtcp:{port}"
    if len(fields) == 4 and fields[3] in relay_addresses:
        return line
    placeholder = "IN IP6 ::" if _has_ipv6_addrtype(fields[1:]) else "IN IP4 0.0.0.0"
    return f"a=rtcp:{port} {placeholder}"


def _blank_origin(line: str) -> str:
    # o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>. Browsers write a
    # loopback or unspecified address here, and anything else is replaced.
    fields = line[2:].split()
    if len(fields) != 6:
        return "o=- 0 0 IN IP4 127.0.0.1"
    if _is_loopback_or_unspecified(fields[5]):
        return line
    address = "::1" if _has_ipv6_addrtype(fields[3:5]) else "127.0.0.1"
    return "o=" + " ".join([*fields[:5], address])


def _candidate_tokens(candidate: str) -> list[str] | None:
    if len(candidate.splitlines()) > 1:
        return None
    tokens = _strip_attribute_prefix(candidate).split()
    if len(tokens) < MIN_CANDIDATE_TOKENS or tokens[TYP_INDEX].lower() != "typ":
        return None
    return tokens


def _strip_attribute_prefix(candidate: str) -> str:
    text = candidate.strip()
    if text[:2].lower() == "a=":
        text = text[2:]
    if text[: len(CANDIDATE_PREFIX)].lower() == CANDIDATE_PREFIX:
        text = CANDIDATE_PREFIX + text[len(CANDIDATE_PREFIX) :]
    return text


def _is_candidate_line(line: str) -> bool:
    return line[: len("a=candidate:")].lower() == "a=candidate:"


def _has_ipv6_addrtype(fields: list[str]) -> bool:
    return any(value.upper() == "IP6" for value in fields[:2])


def _unspecified_like(address: str) -> str:
    try:
        version = ipaddress.ip_address(address).version
    except ValueError:
        return UNSPECIFIED_IPV4
    return UNSPECIFIED_IPV6 if version == 6 else UNSPECIFIED_IPV4


def _is_loopback_or_unspecified(address: str) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return parsed.is_loopback or parsed.is_unspecified
