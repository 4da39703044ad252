"""Ban records and report blocks as stored in JetStream KV, with their bucket configurations.

Moderation writes; gateways read: they watch `bans` (see services/signalling/bans.py) and read a
reporter's `report_blocks` entry at join. Every record is encoded with shared.codec.

CallnError
 └── InvalidBanError     a ban record breaks a rule (end before start, unknown reason)
      └── BanTooLongError  the ban would outlast the 30-day cap
"""

import asyncio
import dataclasses
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import nats.errors
import structlog
from nats.js.api import KeyValueConfig, StorageType
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from shared.codec import decode, encode
from shared.errors import CallnError, DecodeError
from shared.events import Event
from shared.ipkey import short_key
from shared.kv import kv_config
from shared.policy import MAX_BAN_S, SECONDS_PER_DAY, PolicySettings
from shared.subjects import BANS_BUCKET

BAN_STRIKES_BUCKET = "ban_strikes"
REPORT_COUNTS_BUCKET = "report_counts"
REPORT_BLOCKS_BUCKET = "report_blocks"

# The reasons a browser may give, and the reason codes a ban record carries.
REPORT_REASONS = ("harassment", "sexual_content", "spam", "underage", "hate", "other")

# An ip_key is the hex HMAC-SHA256 digest from shared.ipkey.
IP_KEY_PATTERN = re.compile(r"^[0-9a-f]{64}$")

# A reporter's block list goes into every `match.join` the gateway sends, so it stays short;
# the oldest blocks give way first.
MAX_BLOCKS_PER_REPORTER = 50

# Seconds a record's creation time may lie ahead of the store's clock (clock skew between hosts).
MAX_CLOCK_SKEW_S = 5.0

# JetStream error code for "stream name already in use with a different configuration".
STREAM_CONFIG_MISMATCH = 10058

log = structlog.get_logger("bans")


class InvalidBanError(CallnError):
    """A ban record breaks a rule of the ban store."""


class BanTooLongError(InvalidBanError):
    """A ban would last longer than the 30-day cap that the privacy policy promises."""


@dataclass(frozen=True, slots=True)
class BanRecord(Event):
    """One ban: its end time, a reason code and its creation time, in unix seconds."""

    kind: ClassVar[str] = "ban.record"
    until: float
    reason: str
    created_at: float

    def __post_init__(self) -> None:
        # The cap lives in the record itself, so no code path can build or store a longer ban.
        if self.until < self.created_at:
            raise InvalidBanError(f"ban ends at {self.until} before it starts at {self.created_at}")
        if self.until - self.created_at > MAX_BAN_S:
            days = (self.until - self.created_at) / SECONDS_PER_DAY
            raise BanTooLongError(f"ban of {days:.2f} days exceeds the cap of {MAX_BAN_S // SECONDS_PER_DAY} days")
        if self.reason not in REPORT_REASONS:
            raise InvalidBanError(f"unknown ban reason {self.reason!r}; use one of {', '.join(REPORT_REASONS)}")


@dataclass(frozen=True, slots=True)
class ReportBlocks(Event):
    """The keys one reporter is never paired with again, each as `[ip_key, until]`."""

    kind: ClassVar[str] = "report.blocks"
    entries: object


def is_ip_key(value: str) -> bool:
    """Tell whether a string has the shape of an ip_key."""
    return IP_KEY_PATTERN.match(value) is not None


def encode_ban(record: BanRecord) -> bytes:
    return encode(record)


def decode_ban(payload: bytes) -> BanRecord:
    """Decode a stored ban; a record over the cap or with an unknown reason is a DecodeError."""
    try:
        return decode(payload, BanRecord)
    except InvalidBanError as exc:
        raise DecodeError(f"invalid ban record: {exc}") from exc


def encode_blocks(blocks: dict[str, float]) -> bytes:
    return encode(ReportBlocks(entries=[[key, until] for key, until in blocks.items()]))


def decode_blocks(payload: bytes) -> dict[str, float]:
    """Decode a block list into `ip_key -> until`; raise DecodeError on any malformed entry."""
    entries = decode(payload, ReportBlocks).entries
    if not isinstance(entries, list):
        raise DecodeError("report blocks are not a list")

    blocks: dict[str, float] = {}
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 2):
            raise DecodeError("a report block is not a [ip_key, until] pair")
        key, until = entry
        if not isinstance(key, str) or not is_ip_key(key):
            raise DecodeError("a report block names no valid ip_key")
        if isinstance(until, bool) or not isinstance(until, int | float):
            raise DecodeError(f"a report block ends at {until!r}, not a number")
        blocks[key] = float(until)
    return blocks


# -- bucket configurations ------------------------------------------------------------------------


def bans_bucket_config() -> KeyValueConfig:
    """`bans`: ip_key -> BanRecord; the bucket ages records out at the cap even if a purge is missed."""
    return kv_config(BANS_BUCKET, MAX_BAN_S, StorageType.FILE)


def strikes_bucket_config(policy: PolicySettings) -> KeyValueConfig:
    """`ban_strikes`: ip_key -> number of earlier bans, forgotten `ban_history_days` after the latest."""
    ttl_s = policy.ban_history_days * SECONDS_PER_DAY
    return kv_config(BAN_STRIKES_BUCKET, ttl_s, StorageType.FILE)


def report_counts_bucket_config(policy: PolicySettings) -> KeyValueConfig:
    """`report_counts`: reported ip_key -> reports within the counting window."""
    return kv_config(REPORT_COUNTS_BUCKET, policy.report_window_s, StorageType.FILE)


def report_blocks_bucket_config(policy: PolicySettings) -> KeyValueConfig:
    """`report_blocks`: reporter ip_key -> keys the matcher must not pair it with."""
    return kv_config(REPORT_BLOCKS_BUCKET, policy.report_block_s, StorageType.FILE)


async def open_bucket(js: JetStreamContext, config: KeyValueConfig) -> KeyValue:
    """Create or open a KV bucket; a bucket made with another `max_age` is updated to `config`.

    A changed retention setting therefore takes effect at the next start instead of
    stopping the service with a configuration mismatch.
    """
    try:
        return await js.create_key_value(config)
    except BadRequestError as exc:
        if exc.err_code != STREAM_CONFIG_MISMATCH:
            raise

    stream = f"KV_{config.bucket}"
    info = await js.stream_info(stream)
    updated = dataclasses.replace(info.config, max_age=config.ttl)
    await js.update_stream(updated)
    log.info("bucket_config_updated", bucket=config.bucket, max_age_s=config.ttl)
    return await js.key_value(config.bucket)


async def open_bans_bucket(js: JetStreamContext) -> KeyValue:
    return await open_bucket(js, bans_bucket_config())


async def open_report_blocks_bucket(js: JetStreamContext, policy: PolicySettings) -> KeyValue:
    return await open_bucket(js, report_blocks_bucket_config(policy))


# -- reading and writing ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredBan:
    """A ban as read from the bucket, with the revision a conditional delete needs."""

    record: BanRecord
    revision: int


class BanStore:
    """The `bans` bucket as typed records; no write can store a ban that ends after now + 30 days."""

    def __init__(self, bucket: KeyValue, clock: Callable[[], float] = time.time) -> None:
        self._bucket = bucket
        self._clock = clock

    async def get(self, ip_key: str) -> BanRecord | None:
        """Return the stored ban of a key, ended or not, or None."""
        try:
            entry = await self._bucket.get(ip_key)
        except KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        return decode_ban(entry.value)

    async def put(self, ip_key: str, record: BanRecord) -> None:
        """Store a ban; raise BanTooLongError when it would end more than the cap after now.

        BanRecord already bounds `until - created_at`; this check also catches a creation
        time set in the future, which would stretch the ban past the cap from today.
        """
        now = self._clock()
        if record.created_at > now + MAX_CLOCK_SKEW_S or record.until - now > MAX_BAN_S:
            raise BanTooLongError(f"ban until {record.until} ends more than {MAX_BAN_S} s after now ({now})")
        await self._bucket.put(ip_key, encode_ban(record))

    async def delete(self, ip_key: str, revision: int | None = None) -> bool:
        """Remove a ban; only a marker without data remains. Return False when it changed meanwhile.

        With `revision`, the ban is removed only if it is still that revision, so a purge
        pass never removes a ban written after it read the bucket.
        """
        if revision is None:
            await self._bucket.purge(ip_key)
            return True
        try:
            await self._bucket.delete(ip_key, last=revision)
        except KeyWrongLastSequenceError:
            return False
        return True

    async def items(self) -> dict[str, StoredBan]:
        """Read every stored ban with its revision; a record that fails to decode is logged and skipped."""
        watcher = await self._bucket.watchall()
        records: dict[str, StoredBan] = {}
        try:
            async for entry in watcher:
                if entry is None:
                    break
                if entry.operation is not None or not entry.value:
                    continue
                try:
                    records[entry.key] = StoredBan(decode_ban(entry.value), entry.revision or 0)
                except DecodeError as exc:
                    log.warning("ban_record_invalid", ip_key=short_key(entry.key), error=str(exc))
        finally:
            await watcher.stop()
        return records


async def read_blocked_keys(bucket: KeyValue, ip_key: str, now: float, timeout_s: float) -> tuple[str, ...]:
    """Read the keys a reporter must not be paired with, for `match.join.blocked_keys`."""
    return tuple(await read_blocks(bucket, ip_key, now, timeout_s))


async def read_blocks(bucket: KeyValue, ip_key: str, now: float, timeout_s: float) -> dict[str, float]:
    """Read a reporter's unexpired blocks as {reported ip_key: end of block in unix seconds}.

    A lookup that fails or times out returns no blocks and logs a warning, so a join never
    fails because of its block list. The gateway's own recent-partner memory still applies.
    """
    try:
        entry = await asyncio.wait_for(bucket.get(ip_key), timeout_s)
    except KeyNotFoundError:
        return {}
    except (TimeoutError, nats.errors.Error) as exc:
        log.warning("report_blocks_read_failed", ip_key=short_key(ip_key), error=str(exc) or type(exc).__name__)
        return {}
    if not entry.value:
        return {}

    try:
        blocks = decode_blocks(entry.value)
    except DecodeError as exc:
        log.warning("report_blocks_invalid", ip_key=short_key(ip_key), error=str(exc))
        return {}
    return {key: until for key, until in blocks.items() if until > now}
