"""Call resume: signed resume tokens, and session snapshots a draining gateway leaves in NATS KV.

A draining gateway writes each session's snapshot to the `resume` bucket, then asks its clients
to reconnect. The gateway a client reconnects to checks the token, takes the snapshot and carries
the session on under the same session id. Snapshots hold ip_keys, so the bucket keeps them in
memory only and for at most `RESUME_SNAPSHOT_TTL_S`.
"""

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import ClassVar

import msgpack
from nats.js.api import StorageType
from nats.js.client import JetStreamContext
from nats.js.errors import KeyNotFoundError

from services.signalling.session import Call, PastPartner, Session, State
from shared.codec import decode, encode
from shared.errors import DecodeError
from shared.events import Event
from shared.kv import ReopeningBucket, kv_config

RESUME_BUCKET = "resume"

# Seconds a snapshot waits for its client; a client that needs longer starts a fresh session.
RESUME_SNAPSHOT_TTL_S = 60.0

_TOKEN_LABEL = b"calln resume token v1"
_SIGNATURE_BYTES = 16


def token_key(ip_key_secret: bytes) -> bytes:
    """Derive the token signing key from the shared secret, so no extra secret is needed."""
    return hmac.new(ip_key_secret, _TOKEN_LABEL, hashlib.sha256).digest()


def issue_token(key: bytes, session_id: str, browser_id: str, expires_at_s: float) -> str:
    """Sign (session id, browser id, expiry) into an opaque URL-safe token."""
    payload = msgpack.packb([session_id, browser_id, int(expires_at_s)])
    signature = hmac.new(key, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]
    return _b64(payload) + "." + _b64(signature)


def verify_token(key: bytes, token: object, browser_id: str, now_s: float | None = None) -> str | None:
    """Return the session id of a valid, unexpired token issued to this browser, else None."""
    if not isinstance(token, str) or len(token) > 512 or "." not in token:
        return None
    payload_text, _, signature_text = token.partition(".")
    try:
        payload, signature = _unb64(payload_text), _unb64(signature_text)
        expected = hmac.new(key, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]
        if not hmac.compare_digest(signature, expected):
            return None
        session_id, token_browser, expires_at = msgpack.unpackb(payload)
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        return None
    now = time.time() if now_s is None else now_s
    if token_browser != browser_id or not isinstance(session_id, str) or expires_at < now:
        return None
    return session_id


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class SessionSnapshot(Event):
    """State another gateway needs to carry a session on; times are ages, not clock readings."""

    kind: ClassVar[str] = "gw.snapshot"
    session_id: str
    browser_id: str
    ip_key: str
    country: str
    hide_ip: bool
    state: str
    wanted: str
    widen: bool
    waiting_since_us: int
    call: object
    past_partners: object
    reported_calls: tuple[str, ...]
    blocked_keys: object


def snapshot_of(session: Session, now_s: float) -> SessionSnapshot:
    call = session.call
    return SessionSnapshot(
        session_id=session.session_id,
        browser_id=session.browser_id,
        ip_key=session.ip_key,
        country=session.country,
        hide_ip=session.hide_ip,
        state=session.state.value,
        wanted=session.wanted,
        widen=session.widen,
        waiting_since_us=session.waiting_since_us,
        call=None
        if call is None
        else [
            call.call_id,
            call.role,
            call.partner_session,
            call.partner_gateway,
            call.partner_key,
            call.partner_browser,
            call.partner_country,
        ],
        past_partners=[
            [p.call_id, p.session_id, p.browser_id, p.ip_key, now_s - p.ended_at_s] for p in session.past_partners
        ],
        reported_calls=tuple(session.reported_calls),
        blocked_keys={key: until - now_s for key, until in session.blocked_keys.items()},
    )


def restore_into(session: Session, snapshot: SessionSnapshot, now_s: float) -> None:
    """Copy a snapshot's state into a freshly created session; raise DecodeError on a bad shape."""
    try:
        session.state = State(snapshot.state)
        session.wanted = snapshot.wanted
        session.widen = snapshot.widen
        session.waiting_since_us = snapshot.waiting_since_us
        session.hide_ip = snapshot.hide_ip
        if snapshot.call is not None:
            session.call = Call(*[str(value) for value in snapshot.call])  # type: ignore[attr-defined]
        for call_id, partner, browser, key, age_s in snapshot.past_partners:  # type: ignore[attr-defined]
            session.past_partners.append(PastPartner(call_id, partner, browser, key, now_s - float(age_s)))
        session.reported_calls = set(snapshot.reported_calls)
        session.blocked_keys = {
            str(key): now_s + float(left_s)
            for key, left_s in snapshot.blocked_keys.items()  # type: ignore[attr-defined]
        }
    except (TypeError, ValueError, AttributeError) as exc:
        raise DecodeError(f"invalid session snapshot: {exc}") from exc
    if session.state is State.IN_CALL and session.call is None:
        raise DecodeError("invalid session snapshot: state in_call without a call")


class ResumeStore:
    """Snapshots and current locations of moving sessions, in a short-lived memory KV bucket."""

    def __init__(self, js: JetStreamContext) -> None:
        config = kv_config(RESUME_BUCKET, RESUME_SNAPSHOT_TTL_S, StorageType.MEMORY)
        self._bucket = ReopeningBucket(js, config)

    async def _put(self, key: str, value: bytes) -> None:
        try:
            await (await self._bucket.get()).put(key, value)
        except Exception as exc:
            self._bucket.forget_on(exc)
            raise

    async def _get(self, key: str) -> bytes | None:
        try:
            entry = await (await self._bucket.get()).get(key)
        except KeyNotFoundError:
            return None
        except Exception as exc:
            self._bucket.forget_on(exc)
            raise
        return entry.value or None

    async def save(self, snapshot: SessionSnapshot) -> None:
        await self._put(f"snap.{snapshot.session_id}", encode(snapshot))

    async def take(self, session_id: str) -> SessionSnapshot | None:
        """Fetch and delete a snapshot, so one token resumes a session once."""
        value = await self._get(f"snap.{session_id}")
        if value is None:
            return None
        await (await self._bucket.get()).delete(f"snap.{session_id}")
        return decode(value, SessionSnapshot)

    async def set_location(self, session_id: str, gateway_id: str) -> None:
        await self._put(f"loc.{session_id}", gateway_id.encode())

    async def location(self, session_id: str) -> str | None:
        value = await self._get(f"loc.{session_id}")
        return value.decode() if value else None
