"""A real coturn on loopback accepts the gateway's REST-API credentials and rejects expired or forged ones.

The deploy configs are also checked as data: peer ranges, limits, and no secret in the files.
"""

import asyncio
import dataclasses
import ipaddress
import secrets
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aioice import stun
from aioice.turn import TurnClientUdpProtocol, create_turn_endpoint

from scripts.coturn import Coturn, start_coturn
from shared.turn import TurnCredentials, TurnSettings, issue_credentials, make_password
from tests.support.nats_server import free_port
from tests.support.turn import skip_without_turnserver

REPO_ROOT = Path(__file__).resolve().parents[2]
DEV_CONFIG = REPO_ROOT / "deploy" / "coturn" / "turnserver-dev.conf"
PROD_CONFIG = REPO_ROOT / "deploy" / "coturn" / "turnserver-prod.conf"

# Seconds one TURN exchange may take. coturn on loopback responds within milliseconds.
TURN_TIMEOUT_S = 10.0

UNAUTHORIZED = 401
STALE_NONCE = 438
FORBIDDEN = 403
QUOTA_REACHED = 486

needs_coturn = skip_without_turnserver


@pytest.fixture
def secret() -> str:
    return secrets.token_hex(24)


def start(secret: str, tmp_path: Path, config: Path = DEV_CONFIG, extra_lines: tuple[str, ...] = ()) -> Coturn:
    log_path = tmp_path / f"coturn-{secrets.token_hex(4)}.log"
    coturn = start_coturn(free_port(), secret, config=config, extra_lines=extra_lines, log_path=log_path)
    assert coturn is not None
    return coturn


@pytest.fixture
def coturn(secret: str, tmp_path: Path) -> Iterator[Coturn]:
    server = start(secret, tmp_path)
    try:
        yield server
    finally:
        server.stop()


def turn_settings(coturn: Coturn, secret: str, lifetime_s: int = 600) -> TurnSettings:
    return TurnSettings(urls=(coturn.url,), secret=secret.encode(), credential_lifetime_s=lifetime_s)


@asynccontextmanager
async def turn_client(
    port: int, credentials: TurnCredentials, host: str = "127.0.0.1"
) -> AsyncIterator[TurnClientUdpProtocol]:
    """Open a TURN client on its own UDP socket and delete its allocation, if any, at the end."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(
            (host, port),
            username=credentials.username,
            password=credentials.password,
            lifetime=600,
            channel_refresh_time=500,
        ),
        remote_addr=(host, port),
    )
    try:
        yield protocol
    finally:
        if protocol.relayed_address is not None:
            async with asyncio.timeout(TURN_TIMEOUT_S):
                await protocol.delete()
        transport.close()


async def allocate(port: int, credentials: TurnCredentials) -> tuple[str, int]:
    async with turn_client(port, credentials) as client, asyncio.timeout(TURN_TIMEOUT_S):
        return await client.connect()


async def allocation_error(port: int, credentials: TurnCredentials) -> int:
    """Try an Allocate and return the STUN error code it is rejected with."""
    with pytest.raises(stun.TransactionFailed) as failure:
        await allocate(port, credentials)
    code: int = failure.value.response.attributes["ERROR-CODE"][0]
    return code


class Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait((data, addr))


@needs_coturn
async def test_allocate_with_valid_credentials(coturn: Coturn, secret: str) -> None:
    credentials = issue_credentials(turn_settings(coturn, secret))

    relayed = await allocate(coturn.port, credentials)

    assert relayed[0] == "127.0.0.1"
    assert relayed[1] > 0


@needs_coturn
async def test_dev_relay_reaches_loopback_peer(coturn: Coturn, secret: str) -> None:
    loop = asyncio.get_running_loop()
    peer_transport, peer = await loop.create_datagram_endpoint(Collector, local_addr=("127.0.0.1", 0))
    peer_address = peer_transport.get_extra_info("sockname")
    credentials = issue_credentials(turn_settings(coturn, secret))
    relay_transport, relay = await create_turn_endpoint(
        Collector, ("127.0.0.1", coturn.port), credentials.username, credentials.password
    )
    try:
        async with asyncio.timeout(TURN_TIMEOUT_S):
            relay_transport.sendto(b"ping", peer_address)
            data, source = await peer.received.get()
            assert data == b"ping"
            assert source == relay_transport.get_extra_info("sockname")

            peer_transport.sendto(b"pong", source)
            data, source = await relay.received.get()
            assert data == b"pong"
            assert source == peer_address
    finally:
        relay_transport.close()
        peer_transport.close()


@needs_coturn
async def test_expired_credentials_rejected(coturn: Coturn, secret: str) -> None:
    settings = turn_settings(coturn, secret)
    expired = issue_credentials(settings, clock=lambda: time.time() - settings.credential_lifetime_s - 60)
    assert expired.expires_at < time.time()

    assert await allocation_error(coturn.port, expired) in (UNAUTHORIZED, STALE_NONCE)


@needs_coturn
async def test_expired_credentials_make_no_allocation(secret: str, tmp_path: Path) -> None:
    # With room for one allocation in total, a rejected request that still allocated would use it up.
    coturn = start(secret, tmp_path, extra_lines=("total-quota=1",))
    try:
        settings = turn_settings(coturn, secret)
        expired = issue_credentials(settings, clock=lambda: time.time() - settings.credential_lifetime_s - 60)

        assert await allocation_error(coturn.port, expired) in (UNAUTHORIZED, STALE_NONCE)

        valid = issue_credentials(settings)
        async with turn_client(coturn.port, valid) as first:
            async with asyncio.timeout(TURN_TIMEOUT_S):
                await first.connect()
            assert await allocation_error(coturn.port, issue_credentials(settings)) == QUOTA_REACHED
    finally:
        coturn.stop()


@needs_coturn
async def test_forged_password_rejected(coturn: Coturn, secret: str) -> None:
    genuine = issue_credentials(turn_settings(coturn, secret))
    forged = dataclasses.replace(genuine, password=make_password(b"not-the-turn-secret-0000", genuine.username))

    assert await allocation_error(coturn.port, forged) == UNAUTHORIZED


@needs_coturn
async def test_extended_expiry_with_old_password_rejected(coturn: Coturn, secret: str) -> None:
    genuine = issue_credentials(turn_settings(coturn, secret))
    random_id = genuine.username.split(":", 1)[1]
    extended = dataclasses.replace(genuine, username=f"{genuine.expires_at + 86_400}:{random_id}")

    assert await allocation_error(coturn.port, extended) == UNAUTHORIZED


@needs_coturn
@pytest.mark.slow
async def test_allocation_outlives_credential_expiry(coturn: Coturn, secret: str) -> None:
    # coturn checks the expiry when it first authenticates a client. An allocation made before the expiry
    # can still be refreshed afterwards, so a call in progress outlives the credential lifetime.
    settings = turn_settings(coturn, secret, lifetime_s=60)
    now = time.time()
    credentials = issue_credentials(settings, clock=lambda: now - 58)

    async with turn_client(coturn.port, credentials) as client:
        async with asyncio.timeout(TURN_TIMEOUT_S):
            await client.connect()

        deadline = time.monotonic() + TURN_TIMEOUT_S
        while time.time() <= credentials.expires_at + 1:
            assert time.monotonic() < deadline, "clock did not pass the credential expiry"
            await asyncio.sleep(0.1)

        refresh = stun.Message(message_method=stun.Method.REFRESH, message_class=stun.Class.REQUEST)
        refresh.attributes["LIFETIME"] = 600
        async with asyncio.timeout(TURN_TIMEOUT_S):
            response, _ = await client.request_with_retry(refresh)
        assert response.attributes["LIFETIME"] > 0


async def loopback_peer_error(coturn: Coturn, secret: str, host: str = "127.0.0.1") -> int:
    """Allocate over `host`, ask for a channel to a peer on `host` and return the error code (0 if allowed)."""
    credentials = issue_credentials(turn_settings(coturn, secret))
    async with turn_client(coturn.port, credentials, host) as client, asyncio.timeout(TURN_TIMEOUT_S):
        await client.connect()
        try:
            await client.channel_bind(0x4000, (host, free_port()))
        except stun.TransactionFailed as failure:
            code: int = failure.response.attributes["ERROR-CODE"][0]
            return code
    return 0


def ipv6_loopback_works() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


PROD_ON_LOOPBACK = ("listening-ip=127.0.0.1", "relay-ip=127.0.0.1", "no-tls", "no-dtls")


@needs_coturn
async def test_prod_config_denies_loopback_peer(secret: str, tmp_path: Path) -> None:
    coturn = start(secret, tmp_path, config=PROD_CONFIG, extra_lines=PROD_ON_LOOPBACK)
    try:
        assert await loopback_peer_error(coturn, secret) == FORBIDDEN
    finally:
        coturn.stop()


@needs_coturn
async def test_prod_denied_list_overrides_loopback_flag(secret: str, tmp_path: Path) -> None:
    # coturn denies loopback peers by default. With the development flag added, the file's own
    # denied-peer-ip list must still block them.
    coturn = start(secret, tmp_path, config=PROD_CONFIG, extra_lines=(*PROD_ON_LOOPBACK, "allow-loopback-peers"))
    try:
        assert await loopback_peer_error(coturn, secret) == FORBIDDEN
    finally:
        coturn.stop()


@needs_coturn
@pytest.mark.skipif(not ipv6_loopback_works(), reason="this host has no IPv6 loopback address ::1")
async def test_prod_denied_list_covers_ipv6_loopback(secret: str, tmp_path: Path) -> None:
    # Listening on ::1 as well, with the client's address family kept, gives the client an IPv6 relay.
    ipv6 = ("listening-ip=::1", "relay-ip=::1", "allocation-default-address-family=keep", "allow-loopback-peers")
    coturn = start(secret, tmp_path, config=PROD_CONFIG, extra_lines=(*PROD_ON_LOOPBACK, *ipv6))
    try:
        assert await loopback_peer_error(coturn, secret, host="::1") == FORBIDDEN
    finally:
        coturn.stop()


@needs_coturn
async def test_dev_config_allows_loopback_peer(coturn: Coturn, secret: str) -> None:
    assert await loopback_peer_error(coturn, secret) == 0


# -- the config files as data -------------------------------------------------------------------------


def config_entries(path: Path) -> list[tuple[str, str]]:
    entries = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        entries.append((name.strip(), value.strip()))
    return entries


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def denied_ranges(path: Path) -> list[tuple[Address, Address]]:
    ranges: list[tuple[Address, Address]] = []
    for name, value in config_entries(path):
        if name == "denied-peer-ip":
            first, _, last = value.partition("-")
            ranges.append((ipaddress.ip_address(first), ipaddress.ip_address(last or first)))
    return ranges


def is_denied(address: str, ranges: list[tuple[Address, Address]]) -> bool:
    parsed = ipaddress.ip_address(address)
    return any(
        first.version == parsed.version and first <= parsed <= last  # type: ignore[operator]  # same version checked
        for first, last in ranges
    )


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.1",
        "127.0.0.1",
        "127.1.2.3",
        "169.254.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.251",
        "239.255.255.250",
        "255.255.255.255",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",
        "ff02::1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a00:1",
    ],
)
def test_prod_config_denies_range(address: str) -> None:
    assert is_denied(address, denied_ranges(PROD_CONFIG))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "172.32.0.1", "2606:4700:4700::1111"])
def test_prod_config_allows_public_address(address: str) -> None:
    assert not is_denied(address, denied_ranges(PROD_CONFIG))


def test_prod_config_sets_limits_and_hardening() -> None:
    names = {name for name, _ in config_entries(PROD_CONFIG)}

    for required in (
        "use-auth-secret",
        "realm",
        "no-multicast-peers",
        "user-quota",
        "total-quota",
        "no-cli",
        "no-tlsv1",
        "no-tlsv1_1",
        "no-tcp-relay",
        "log-file",
    ):
        assert required in names
    assert "allow-loopback-peers" not in names
    assert dict(config_entries(PROD_CONFIG))["log-file"] == "stdout"


def test_dev_config_stays_on_loopback() -> None:
    entries = dict(config_entries(DEV_CONFIG))

    assert entries["listening-ip"] == "127.0.0.1"
    assert entries["relay-ip"] == "127.0.0.1"
    assert entries["realm"] == "calln.local"
    assert entries["log-file"] == "stdout"
    assert "allow-loopback-peers" in entries
    assert "use-auth-secret" in entries


@pytest.mark.parametrize("path", [DEV_CONFIG, PROD_CONFIG])
def test_config_holds_no_secret(path: Path) -> None:
    names = {name for name, _ in config_entries(path)}

    assert "static-auth-secret" not in names
    assert "user" not in names
