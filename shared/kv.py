"""A JetStream KV bucket that is opened lazily and opened again after the broker lost it."""

from nats.js.api import KeyValueConfig, StorageType
from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError, NoStreamResponseError
from nats.js.kv import KeyValue

from shared.settings import env_int

# A JetStream cluster runs at most 5 replicas of a stream.
MAX_KV_REPLICAS = 5


def kv_config(bucket: str, ttl_s: float, storage: StorageType) -> KeyValueConfig:
    """Describe a bucket with history 1, entries living `ttl_s`, on NATS_KV_REPLICAS servers.

    One replica suits a single broker; a 3-node cluster should run 3, so that losing one
    server loses no bucket.
    """
    replicas = env_int("NATS_KV_REPLICAS", 1, minimum=1, maximum=MAX_KV_REPLICAS)
    return KeyValueConfig(bucket=bucket, history=1, ttl=ttl_s, storage=storage, replicas=replicas)


class ReopeningBucket:
    """Creates or opens a bucket on first use, and again after a 'no stream' failure.

    A broker restarted without its store (or a memory bucket after any restart) replies to
    requests for the old bucket with no responders. Creating the bucket again heals that.
    """

    def __init__(self, js: JetStreamContext, config: KeyValueConfig) -> None:
        self._js = js
        self._config = config
        self._bucket: KeyValue | None = None

    async def get(self) -> KeyValue:
        if self._bucket is None:
            self._bucket = await self._js.create_key_value(self._config)
        return self._bucket

    def forget_on(self, exc: BaseException) -> None:
        """Drop the open handle when `exc` shows that the bucket no longer exists."""
        if isinstance(exc, BucketNotFoundError | NoStreamResponseError):
            self._bucket = None
