"""Start coturn on loopback with the development config and a shared secret, for `make run` and tests.

Command line: `TURN_SECRET=... python scripts/coturn.py --port 3478` runs coturn until SIGTERM or Ctrl-C.
Its log goes to stdout and, when LOG_DIR is set, also to `<LOG_DIR>/coturn-<UTC date>.log`, which the
moderation service deletes after the log retention period. Uses the standard library only, so it also runs
as a plain script.
"""

import argparse
import datetime
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_CONFIG = REPO_ROOT / "deploy" / "coturn" / "turnserver-dev.conf"
LOOPBACK = "127.0.0.1"
BINARY_CANDIDATES = ("turnserver", "/usr/bin/turnserver")

INSTALL_HINT = (
    "coturn is not installed, so there is no TURN relay: calls use direct paths only and 'Hide my IP' "
    "cannot connect. Install it with `apt-get install coturn` (Debian, Ubuntu) and start again."
)

# Same lower bound as shared.turn.MIN_TURN_SECRET_CHARS: shorter secrets are open to offline brute force.
MIN_SECRET_CHARS = 16

# Seconds coturn gets to respond to its first STUN request. It normally needs well under one.
STARTUP_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
PROBE_INTERVAL_S = 0.1

# STUN Binding request header (RFC 8489 section 5): type 0x0001, length 0, magic cookie, transaction id.
STUN_BINDING_REQUEST = 0x0001
STUN_BINDING_SUCCESS = 0x0101
STUN_MAGIC_COOKIE = 0x2112A442


@dataclass
class Coturn:
    """A running turnserver on 127.0.0.1, stopped by its own process id."""

    process: subprocess.Popen[bytes]
    port: int
    work_dir: tempfile.TemporaryDirectory[str]
    log_path: Path | None = None
    _copier: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"turn:{LOOPBACK}:{self.port}?transport=udp"

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """Stop coturn with SIGTERM (SIGKILL after `timeout_s`), delete its files and return its exit status."""
        try:
            if self.process.poll() is None:
                self.process.terminate()
            try:
                return self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                return self.process.wait(timeout=timeout_s)
        finally:
            if self._copier is not None:
                self._copier.join(timeout=timeout_s)
            self.work_dir.cleanup()

    def log_text(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def find_turnserver() -> str | None:
    for candidate in BINARY_CANDIDATES:
        path = shutil.which(candidate)
        if path:
            return path
    return None


def check_secret(secret: str) -> None:
    """Raise ValueError unless the secret is long enough and safe to write as one config line."""
    if len(secret) < MIN_SECRET_CHARS:
        raise ValueError(f"TURN_SECRET has {len(secret)} characters; use at least {MIN_SECRET_CHARS}")
    if not secret.isprintable() or any(char.isspace() or char == "#" for char in secret):
        raise ValueError("TURN_SECRET must be printable, without spaces or '#'; try secrets.token_hex(32)")


def free_port() -> int:
    """Return a loopback port that is free for both UDP and TCP, as coturn listens on both."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((LOOPBACK, 0))
            port: int = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((LOOPBACK, port))
                except OSError:
                    continue
                return port


def write_config(work_dir: Path, config: Path, port: int, secret: str, extra_lines: tuple[str, ...]) -> Path:
    """Write `config` plus the port, private paths and the secret to a file only this user can read."""
    lines = [
        config.read_text(encoding="utf-8").rstrip("\n"),
        "",
        "# Added by scripts/coturn.py for this run.",
        f"listening-port={port}",
        f"pidfile={work_dir / 'turnserver.pid'}",
        f"userdb={work_dir / 'turndb'}",
        *extra_lines,
        f"static-auth-secret={secret}",
    ]
    path = work_dir / "turnserver.conf"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def start_coturn(
    port: int,
    secret: str,
    *,
    config: Path = DEV_CONFIG,
    extra_lines: tuple[str, ...] = (),
    log_path: Path | None = None,
    log_dir: str | None = None,
    timeout_s: float = STARTUP_TIMEOUT_S,
) -> Coturn | None:
    """Start turnserver on 127.0.0.1:`port` and wait until it responds to STUN.

    Returns None after printing how to install coturn when the binary is missing. The log goes to
    `log_path` when given, else to stdout (and to LOG_DIR files when `log_dir` is set). Raises ValueError
    for an unusable secret and RuntimeError or TimeoutError when coturn does not come up.
    """
    binary = find_turnserver()
    if binary is None:
        print(INSTALL_HINT, file=sys.stderr, flush=True)
        return None
    check_secret(secret)

    work_dir = tempfile.TemporaryDirectory(prefix="calln-coturn-")
    try:
        config_path = write_config(Path(work_dir.name), config, port, secret, extra_lines)
        coturn = _spawn(binary, config_path, port, work_dir, log_path, log_dir)
    except BaseException:
        work_dir.cleanup()
        raise

    try:
        wait_for_stun(coturn, timeout_s)
    except BaseException:
        coturn.stop()
        raise
    return coturn


def _spawn(
    binary: str,
    config_path: Path,
    port: int,
    work_dir: tempfile.TemporaryDirectory[str],
    log_path: Path | None,
    log_dir: str | None,
) -> Coturn:
    # -n would skip config files entirely; -c makes coturn read only ours, not /etc/turnserver.conf.
    command = [binary, "-c", str(config_path)]
    if log_path is not None:
        with open(log_path, "ab") as log_file:
            process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return Coturn(process, port, work_dir, log_path)

    if not log_dir:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        return Coturn(process, port, work_dir)

    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    assert process.stdout is not None
    copier = threading.Thread(target=copy_log, args=(process.stdout, log_dir), daemon=True)
    copier.start()
    return Coturn(process, port, work_dir, _copier=copier)


def copy_log(stream: IO[bytes], log_dir: str) -> None:
    """Copy coturn's output to stdout and to `<log_dir>/coturn-<UTC date>.log`, one file per day."""
    os.makedirs(log_dir, exist_ok=True)
    day = ""
    handle: IO[str] | None = None
    try:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            sys.stdout.write(line)
            sys.stdout.flush()
            today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
            if handle is None or today != day:
                if handle is not None:
                    handle.close()
                handle = open(os.path.join(log_dir, f"coturn-{today}.log"), "a", encoding="utf-8")  # noqa: SIM115
                day = today
            handle.write(line)
            handle.flush()
    finally:
        if handle is not None:
            handle.close()


def stun_binding_answered(port: int, timeout_s: float) -> bool:
    """Send one STUN Binding request to 127.0.0.1:`port` and tell whether a matching success arrives."""
    transaction_id = secrets.token_bytes(12)
    request = struct.pack("!HHI", STUN_BINDING_REQUEST, 0, STUN_MAGIC_COOKIE) + transaction_id
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.sendto(request, (LOOPBACK, port))
            response = sock.recv(2048)
        except OSError:
            return False
    if len(response) < 20:
        return False
    message_type = struct.unpack("!H", response[:2])[0]
    return message_type == STUN_BINDING_SUCCESS and response[8:20] == transaction_id


def wait_for_stun(coturn: Coturn, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if coturn.process.poll() is not None:
            status = coturn.process.returncode
            raise RuntimeError(f"turnserver exited with status {status}:\n{coturn.log_text()[-3000:]}")
        if stun_binding_answered(coturn.port, PROBE_INTERVAL_S):
            return
    raise TimeoutError(f"turnserver did not respond to STUN on {LOOPBACK}:{coturn.port} within {timeout_s} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run coturn on 127.0.0.1 for local development.")
    parser.add_argument("--port", type=int, default=3478, help="UDP and TCP port to listen on (default 3478)")
    args = parser.parse_args(argv)

    secret = os.environ.get("TURN_SECRET", "")
    try:
        coturn = start_coturn(args.port, secret, log_dir=os.environ.get("LOG_DIR") or None)
    except (ValueError, RuntimeError, TimeoutError) as exc:
        print(f"coturn: {exc}", file=sys.stderr, flush=True)
        return 1
    if coturn is None:
        return 1

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(f"coturn: ready at {coturn.url} (gateways need TURN_URLS={coturn.url} and the same TURN_SECRET)", flush=True)
    while not stop.is_set() and coturn.process.poll() is None:
        stop.wait(0.5)
    status = coturn.stop()
    if stop.is_set():
        return 0
    print(f"coturn: turnserver exited with status {status}", file=sys.stderr, flush=True)
    return status or 1


if __name__ == "__main__":
    sys.exit(main())
