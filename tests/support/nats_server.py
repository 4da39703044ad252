"""NATS brokers for tests: NATS_URL when set, else testcontainers, else the nats-server binary."""

import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

NATS_BINARY_CANDIDATES = ("nats-server", "/usr/sbin/nats-server", "/usr/local/bin/nats-server")

# Seconds a fresh nats-server gets to open its port; it normally needs well under one.
STARTUP_TIMEOUT_S = 10.0

INSTALL_HINT = (
    "No NATS broker for the tests: NATS_URL is unset, no Docker engine answers, and no nats-server "
    "binary was found. Install one with `apt-get install nats-server` (Debian) or from the NATS releases, "
    "or set NATS_URL to a broker the tests may use."
)


@dataclass
class Broker:
    """A NATS broker a test may use; `restart` works only for brokers the tests started."""

    url: str
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    store_dir: str = ""
    binary: str = ""

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def start(self) -> None:
        if self.process is not None:
            return
        self.process = _spawn(self.binary, self.port, self.store_dir)
        wait_for_port(self.port, STARTUP_TIMEOUT_S)


# Ports for services the tests start. They lie below Linux's default ephemeral range
# (32768-60999), so an outgoing connection cannot take a port between our pick and the bind.
SERVICE_PORTS = range(20000, 32000)


def free_port() -> int:
    """Pick a random loopback port in SERVICE_PORTS that is free for TCP and UDP right now."""
    for _ in range(200):
        port = random.choice(SERVICE_PORTS)
        try:
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, kind) as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no free port in {SERVICE_PORTS} after 200 tries")


def wait_for_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def find_nats_binary() -> str | None:
    for candidate in NATS_BINARY_CANDIDATES:
        path = shutil.which(candidate)
        if path:
            return path
    return None


def docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


def _spawn(binary: str, port: int, store_dir: str) -> subprocess.Popen[bytes]:
    command = [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", store_dir]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextmanager
def local_broker() -> Iterator[Broker]:
    """Start nats-server on a free loopback port with a temporary JetStream directory."""
    binary = find_nats_binary()
    if binary is None:
        raise RuntimeError(INSTALL_HINT)
    with tempfile.TemporaryDirectory(prefix="calln-nats-") as store_dir:
        port = free_port()
        broker = Broker(url=f"nats://127.0.0.1:{port}", port=port, store_dir=store_dir, binary=binary)
        broker.start()
        try:
            yield broker
        finally:
            broker.stop()


@contextmanager
def container_broker() -> Iterator[Broker]:
    """Run NATS with JetStream in a container through testcontainers."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    container = DockerContainer("nats:2.10-alpine").with_command("-js").with_exposed_ports(4222)
    with container:
        wait_for_logs(container, "Server is ready", timeout=30)
        host = container.get_container_host_ip()
        port = int(container.get_exposed_port(4222))
        yield Broker(url=f"nats://{host}:{port}")


@contextmanager
def any_broker() -> Iterator[Broker]:
    """Pick a broker in the documented order: NATS_URL, testcontainers, the local binary."""
    url = os.environ.get("NATS_URL")
    if url:
        yield Broker(url=url)
    elif docker_answers():
        with container_broker() as broker:
            yield broker
    else:
        with local_broker() as broker:
            yield broker
