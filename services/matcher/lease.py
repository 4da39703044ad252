"""Leader election through a NATS KV key with a short TTL.

The epoch is the KV revision at which the lease was created: JetStream sequence numbers only
grow, so every new leader has a larger epoch than every earlier one. The bucket is kept on
disk, so a broker restart keeps both the lease and the sequence.
"""

import structlog
from nats.errors import Error as NatsError
from nats.js.api import KeyValueConfig, StorageType
from nats.js.client import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError, NotFoundError

from shared.kv import ReopeningBucket, kv_config
from shared.subjects import LEASE_BUCKET

LEASE_KEY = "leader"

log = structlog.get_logger("lease")


def lease_bucket_config(ttl_s: float) -> KeyValueConfig:
    """Describe the lease bucket; each key lapses `ttl_s` after its last renewal."""
    return kv_config(LEASE_BUCKET, ttl_s, StorageType.FILE)


class Lease:
    """One matcher's view of the lease: try to take it, keep renewing it, notice losing it."""

    def __init__(self, js: JetStreamContext, holder_id: str, ttl_s: float) -> None:
        self._bucket = ReopeningBucket(js, lease_bucket_config(ttl_s))
        self._holder_id = holder_id
        self._revision = 0
        self.epoch = 0

    async def try_acquire(self) -> bool:
        """Take the lease if it is free; on success `epoch` is the new epoch."""
        try:
            self._revision = await (await self._bucket.get()).create(LEASE_KEY, self._holder_id.encode())
        except KeyWrongLastSequenceError:
            return False
        except Exception as exc:
            self._bucket.forget_on(exc)
            raise
        self.epoch = self._revision
        return True

    async def renew(self) -> bool:
        """Extend the lease; False means another matcher holds it now."""
        try:
            bucket = await self._bucket.get()
            self._revision = await bucket.update(LEASE_KEY, self._holder_id.encode(), last=self._revision)
        except (KeyWrongLastSequenceError, NotFoundError) as exc:
            self._bucket.forget_on(exc)
            return False
        except Exception as exc:
            self._bucket.forget_on(exc)
            raise
        return True

    async def release(self) -> None:
        """Give the lease up at shutdown so a standby takes over without waiting for the TTL."""
        try:
            await (await self._bucket.get()).delete(LEASE_KEY, last=self._revision)
        except (NatsError, TimeoutError) as exc:
            log.warning("lease_release_failed", error=str(exc) or type(exc).__name__)
