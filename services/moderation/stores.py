"""Typed access to the moderation buckets: report tallies, ban strikes and report blocks.

Read-modify-write steps use the KV revision, so two moderation replicas cannot lose a report.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import structlog
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue

from services.moderation.decisions import TallyEntry
from shared.bans import MAX_BLOCKS_PER_REPORTER, REPORT_REASONS, decode_blocks, encode_blocks
from shared.codec import decode, encode
from shared.errors import DecodeError
from shared.events import Event
from shared.ipkey import short_key

# Attempts at a compare-and-set write before giving up; a conflict needs a second writer.
MAX_WRITE_ATTEMPTS = 5

T = TypeVar("T")

log = structlog.get_logger("moderation_stores")


@dataclass(frozen=True, slots=True)
class ReportTally(Event):
    """Reports about one key within the window, each as `[reporter_tag, at_s, reason]`."""

    kind: ClassVar[str] = "report.tally"
    entries: object


@dataclass(frozen=True, slots=True)
class BanStrikes(Event):
    """Number of bans of a key, for escalation; the bucket deletes it `ban_history_days` after the latest."""

    kind: ClassVar[str] = "ban.strikes"
    count: int
    last_ban_at: float


def reporter_tag(reporter_key: str) -> str:
    """Digest a reporter's key: a tally must tell reporters apart but never needs their keys."""
    return hashlib.sha256(reporter_key.encode()).hexdigest()[:32]


def encode_tally(entries: tuple[TallyEntry, ...]) -> bytes:
    return encode(ReportTally(entries=[[entry.reporter_tag, entry.at_s, entry.reason] for entry in entries]))


def decode_tally(payload: bytes) -> tuple[TallyEntry, ...]:
    """Decode a stored tally; raise DecodeError on any malformed entry."""
    raw = decode(payload, ReportTally).entries
    if not isinstance(raw, list):
        raise DecodeError("report tally is not a list")

    entries: list[TallyEntry] = []
    for item in raw:
        if not (isinstance(item, list) and len(item) == 3):
            raise DecodeError("a tally entry is not a [reporter_tag, at_s, reason] triple")
        tag, at_s, reason = item
        if not isinstance(tag, str) or isinstance(at_s, bool) or not isinstance(at_s, int | float):
            raise DecodeError("a tally entry has the wrong types")
        if reason not in REPORT_REASONS:
            raise DecodeError(f"a tally entry has the unknown reason {reason!r}")
        entries.append(TallyEntry(tag, float(at_s), reason))
    return tuple(entries)


async def read_modify_write(
    bucket: KeyValue, key: str, parse: Callable[[bytes], T], change: Callable[[T | None], bytes | None]
) -> None:
    """Apply `change` to the value under `key` with compare-and-set, retrying on a conflict.

    `change` returns the new payload, or None to purge the key.
    """
    for _attempt in range(MAX_WRITE_ATTEMPTS):
        current, revision = await _read(bucket, key, parse)
        payload = change(current)
        try:
            if payload is None:
                if revision:
                    await bucket.purge(key)
            elif revision:
                await bucket.update(key, payload, last=revision)
            else:
                await bucket.create(key, payload)
            return
        except KeyWrongLastSequenceError:
            continue
    raise KeyWrongLastSequenceError(description=f"gave up after {MAX_WRITE_ATTEMPTS} conflicting writes")


async def list_keys(bucket: KeyValue) -> list[str]:
    """List the live keys of a bucket; nats-py raises NoKeysError for an empty one."""
    try:
        return await bucket.keys()
    except NoKeysError:
        return []


async def _read(bucket: KeyValue, key: str, parse: Callable[[bytes], T]) -> tuple[T | None, int]:
    try:
        entry = await bucket.get(key)
    except KeyNotFoundError:
        return None, 0
    if not entry.value:
        return None, entry.revision or 0
    try:
        return parse(entry.value), entry.revision or 0
    except DecodeError as exc:
        # A record this version cannot read is replaced, not kept forever.
        log.warning("record_invalid", ip_key=short_key(key), error=str(exc))
        return None, entry.revision or 0


class TallyStore:
    """`report_counts`: reported ip_key -> the reports counted in the window."""

    def __init__(self, bucket: KeyValue) -> None:
        self.bucket = bucket

    async def get(self, reported_key: str) -> tuple[TallyEntry, ...]:
        entries, _revision = await _read(self.bucket, reported_key, decode_tally)
        return entries or ()

    async def update(
        self, reported_key: str, change: Callable[[tuple[TallyEntry, ...]], tuple[TallyEntry, ...] | None]
    ) -> None:
        """Rewrite a tally with compare-and-set; `change` returns the new entries, or None to delete."""

        def apply(current: tuple[TallyEntry, ...] | None) -> bytes | None:
            entries = change(current or ())
            return encode_tally(entries) if entries else None

        await read_modify_write(self.bucket, reported_key, decode_tally, apply)

    async def delete(self, reported_key: str) -> None:
        await self.bucket.purge(reported_key)

    async def remove_reporter(self, tag: str) -> int:
        """Drop one reporter's entries from every tally; return the tallies changed."""
        changed = 0
        for reported_key in await list_keys(self.bucket):
            if any(entry.reporter_tag == tag for entry in await self.get(reported_key)):
                await self.update(reported_key, lambda entries: tuple(e for e in entries if e.reporter_tag != tag))
                changed += 1
        return changed


class StrikeStore:
    """`ban_strikes`: ip_key -> number of bans so far, forgotten by the bucket's max_age."""

    def __init__(self, bucket: KeyValue) -> None:
        self.bucket = bucket

    async def count(self, ip_key: str) -> int:
        strikes, _revision = await _read(self.bucket, ip_key, lambda payload: decode(payload, BanStrikes))
        return strikes.count if strikes is not None else 0

    async def add(self, ip_key: str, now_s: float) -> None:
        def apply(current: BanStrikes | None) -> bytes:
            count = current.count + 1 if current is not None else 1
            return encode(BanStrikes(count=count, last_ban_at=now_s))

        await read_modify_write(self.bucket, ip_key, lambda payload: decode(payload, BanStrikes), apply)

    async def delete(self, ip_key: str) -> None:
        await self.bucket.purge(ip_key)


class BlockStore:
    """`report_blocks`: reporter ip_key -> keys it is never paired with again until a time."""

    def __init__(self, bucket: KeyValue) -> None:
        self.bucket = bucket

    async def get(self, reporter_key: str) -> dict[str, float]:
        blocks, _revision = await _read(self.bucket, reporter_key, decode_blocks)
        return blocks or {}

    async def add(self, reporter_key: str, blocked_key: str, until: float, now_s: float) -> None:
        def apply(current: dict[str, float] | None) -> bytes:
            blocks = {key: end for key, end in (current or {}).items() if end > now_s and key != blocked_key}
            blocks[blocked_key] = until
            newest = sorted(blocks.items(), key=lambda item: item[1])[-MAX_BLOCKS_PER_REPORTER:]
            return encode_blocks(dict(newest))

        await read_modify_write(self.bucket, reporter_key, decode_blocks, apply)

    async def remove_everywhere(self, ip_key: str) -> int:
        """Erase a key's own block list and every block naming it; return the records changed."""
        changed = 0
        for owner in await list_keys(self.bucket):
            if owner == ip_key:
                await self.bucket.purge(owner)
                changed += 1
            elif ip_key in await self.get(owner):
                await read_modify_write(self.bucket, owner, decode_blocks, _without(ip_key))
                changed += 1
        return changed


def _without(ip_key: str) -> Callable[[dict[str, float] | None], bytes | None]:
    def apply(current: dict[str, float] | None) -> bytes | None:
        remaining = {key: until for key, until in (current or {}).items() if key != ip_key}
        return encode_blocks(remaining) if remaining else None

    return apply
