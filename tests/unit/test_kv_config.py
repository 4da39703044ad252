"""Bucket configurations take their replica count from NATS_KV_REPLICAS."""

import pytest
from nats.js.api import StorageType

from shared.errors import ConfigError
from shared.kv import kv_config


def test_single_replica_by_default(monkeypatch):
    monkeypatch.delenv("NATS_KV_REPLICAS", raising=False)
    config = kv_config("bans", 60.0, StorageType.FILE)
    assert config.replicas == 1
    assert config.history == 1
    assert config.ttl == 60.0
    assert config.storage is StorageType.FILE


def test_replicas_from_environment(monkeypatch):
    monkeypatch.setenv("NATS_KV_REPLICAS", "3")
    assert kv_config("bans", 60.0, StorageType.FILE).replicas == 3


@pytest.mark.parametrize("value", ["0", "6", "three"])
def test_invalid_replicas_rejected(monkeypatch, value):
    monkeypatch.setenv("NATS_KV_REPLICAS", value)
    with pytest.raises(ConfigError, match="NATS_KV_REPLICAS"):
        kv_config("bans", 60.0, StorageType.FILE)
