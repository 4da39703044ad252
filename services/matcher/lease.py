"""Leader election through a NATS KV key with a short TTL.

The epoch is the KV revision at which the lease was created: JetStream sequence numbers only
grow, so every new leader has a larger epoch than every earlier one.
"""

import structlog
from nats.js.api import KeyValueConfig, StorageType
from nats.js.client import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from shared.subjects import LEASE_BUCKET

LEASE_KEY = "leader"

log = structlog.get_logger("lease")


async def open_lease_bucket(js: JetStreamContext, ttl_s: float) -> KeyValue:
    """Create or open the lease bucket; each key lapses `ttl_s` after its last renewal."""
    config = KeyValueConfig(bucket=LEASE_BUCKET, history=1, ttl=ttl_s, storage=StorageType.MEMORY)
    return await js.create_key_value(config)


class Lease:
    """One matcher's view of the lease: try to take it, keep renewing it, notice losing it."""

    def __init__(self, bucket: KeyValue, holder_id: str) -> None:
        self._bucket = bucket
        self._holder_id = holder_id
        self._revision = 0
        self.epoch = 0

    async def try_acquire(self) -> bool:
        """Take the lease if nobody holds it; on success `epoch` is the new epoch."""
        try:
            self._revision = await self._bucket.create(LEASE_KEY, self._holder_id.encode())
        except KeyWrongLastSequenceError:
            return False
        self.epoch = self._revision
        return True

    async def renew(self) -> bool:
        """Extend the lease; False means another matcher holds it now."""
        try:
            self._revision = await self._bucket.update(LEASE_KEY, self._holder_id.encode(), last=self._revision)
        except (KeyWrongLastSequenceError, NotFoundError):
            return False
        return True

    async def release(self) -> None:
        """Give the lease up at shutdown so a standby takes over without waiting for the TTL."""
        try:
            await self._bucket.delete(LEASE_KEY, last=self._revision)
        except (TimeoutError, KeyWrongLastSequenceError, NotFoundError) as exc:
            log.warning("lease_release_failed", error=str(exc) or type(exc).__name__)
