"""NATS subject names. Gateways receive deliveries on their own `gw.<gateway_id>.>` subtree."""

MATCH_JOIN = "match.join"
MATCH_LEAVE = "match.leave"
MATCH_EPOCH = "match.epoch"
MATCH_CONFIRM = "match.confirm"
GATEWAY_HEARTBEAT = "gateway.heartbeat"
MODERATION_REPORT = "moderation.report"

GW_MATCHED = "matched"
GW_START = "start"
GW_RELAY = "relay"
GW_ENDED = "ended"
GW_MOVED = "moved"

BANS_BUCKET = "bans"
LEASE_BUCKET = "matcher_lease"


def gateway_subject(gateway_id: str, kind: str) -> str:
    """Build the subject that delivers `kind` messages to one gateway."""
    return f"gw.{gateway_id}.{kind}"


def gateway_wildcard(gateway_id: str) -> str:
    """Build the wildcard subject one gateway subscribes to."""
    return f"gw.{gateway_id}.>"
