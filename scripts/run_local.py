"""Start the whole Calln stack on this machine as plain processes with prefixed logs.

`make run` calls this. It generates the secrets the services need (unless set), starts a local
nats-server when nothing listens at NATS_URL, runs web, two gateways, the matcher, moderation and,
where installed, coturn, prints the URL to open, and stops everything on Ctrl-C.
"""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import urlparse

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NATS_BINARIES = ("nats-server", "/usr/sbin/nats-server")

# Seconds each process gets to exit after SIGTERM before it is killed; gateways drain within it.
STOP_TIMEOUT_S = 15.0

WEB_PORT = 8080
GATEWAY_PORTS = (8090, 8091)
MATCHER_PORT = 8092
MODERATION_PORT = 8094
TURN_PORT = 3478


def port_answers(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_for_port(host: str, port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_answers(host, port):
            return True
        time.sleep(0.05)
    return False


def pump(name: str, stream: object) -> None:
    """Copy a child's output to ours, each line prefixed with the process name."""
    for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
        sys.stdout.write(f"{name:<11}| {raw.decode(errors='replace')}")
        sys.stdout.flush()


class Supervisor:
    """Owns the child processes and stops them in reverse start order."""

    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=pump, args=(name, process.stdout), daemon=True).start()
        self.children.append((name, process))
        return process

    def stop_all(self) -> None:
        """Stop the services first and the broker last, so services drain against a live broker."""
        services = [child for child in self.children if child[0] != "nats"]
        broker = [child for child in self.children if child[0] == "nats"]
        for group in (services, broker):
            self._stop(list(reversed(group)))

    def _stop(self, children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
        for _name, process in children:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in children:
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                print(f"run: {name} did not stop within {STOP_TIMEOUT_S} s; killing it", flush=True)
                process.kill()
                process.wait()

    def first_exit(self) -> tuple[str, int] | None:
        for name, process in self.children:
            code = process.poll()
            if code is not None:
                return name, code
        return None


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("IP_KEY_SECRET", secrets.token_hex(32))
    env.setdefault("ADMIN_TOKEN", secrets.token_urlsafe(24))
    env.setdefault("TURN_SECRET", secrets.token_hex(24))
    env.setdefault("NATS_URL", "nats://127.0.0.1:4222")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def ensure_nats(supervisor: Supervisor, env: dict[str, str], store_dir: str) -> None:
    url = urlparse(env["NATS_URL"])
    host, port = url.hostname or "127.0.0.1", url.port or 4222
    if port_answers(host, port):
        print(f"run: using the NATS server at {env['NATS_URL']}", flush=True)
        return
    binary = next((path for path in map(shutil.which, NATS_BINARIES) if path), None)
    if binary is None:
        sys.exit("run: no NATS server answers and nats-server is not installed; run `apt-get install nats-server`")
    if host not in ("127.0.0.1", "localhost"):
        sys.exit(f"run: NATS_URL {env['NATS_URL']} does not answer; start it or unset NATS_URL")
    print(f"run: starting nats-server on 127.0.0.1:{port} with JetStream in {store_dir}", flush=True)
    supervisor.start("nats", [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", store_dir], env)
    if not wait_for_port("127.0.0.1", port, 10):
        sys.exit("run: nats-server did not open its port within 10 s")


def turn_env(env: dict[str, str]) -> dict[str, str]:
    if shutil.which("turnserver") is None:
        print(
            "run: coturn is not installed, so calls use direct paths only; install it with "
            "`apt-get install coturn` to get the Hide my IP relay",
            flush=True,
        )
        return {}
    return {"TURN_URLS": f"turn:127.0.0.1:{TURN_PORT}?transport=udp", "TURN_SECRET": env["TURN_SECRET"]}


def start_services(supervisor: Supervisor, env: dict[str, str]) -> None:
    python = sys.executable
    gateway_urls = ",".join(f"http://127.0.0.1:{port}" for port in GATEWAY_PORTS)
    env = {**env, **turn_env(env), "GATEWAY_URLS": gateway_urls}

    if "TURN_URLS" in env and os.path.exists(os.path.join(REPO_ROOT, "scripts", "coturn.py")):
        supervisor.start("coturn", [python, "scripts/coturn.py", "--port", str(TURN_PORT)], env)

    supervisor.start("matcher", [python, "-m", "services.matcher"], {**env, "MATCHER_HTTP_PORT": str(MATCHER_PORT)})
    supervisor.start(
        "moderation", [python, "-m", "services.moderation"], {**env, "MODERATION_HTTP_PORT": str(MODERATION_PORT)}
    )
    for index, port in enumerate(GATEWAY_PORTS):
        supervisor.start(
            f"gateway-{index}",
            [python, "-m", "services.signalling"],
            {**env, "GATEWAY_PORT": str(port), "GATEWAY_ID": f"local-{port}"},
        )
    supervisor.start("web", [python, "-m", "services.web"], {**env, "WEB_PORT": str(WEB_PORT)})


def write_admin_token(token: str) -> str:
    """Keep the admin token in a private file, so it is at hand without showing in the log."""
    path = os.path.join(REPO_ROOT, "run", "admin-token")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token + "\n")
    return path


def main() -> None:
    supervisor = Supervisor()
    env = base_env()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with tempfile.TemporaryDirectory(prefix="calln-nats-") as store_dir:
        try:
            ensure_nats(supervisor, env, store_dir)
            start_services(supervisor, env)
            ready = all(wait_for_port("127.0.0.1", port, 30) for port in (WEB_PORT, *GATEWAY_PORTS))
            if ready:
                print(f"run: the admin API token is in {write_admin_token(env['ADMIN_TOKEN'])}", flush=True)
                print(
                    f"\n  Calln is running. Open http://127.0.0.1:{WEB_PORT}/ in two browser windows\n"
                    "  (one of them private, so the two get different browser ids). Ctrl-C stops it.\n",
                    flush=True,
                )
            while not stop.is_set():
                exited = supervisor.first_exit()
                if exited is not None:
                    print(f"run: {exited[0]} exited with status {exited[1]}; stopping everything", flush=True)
                    break
                stop.wait(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            print("run: stopping", flush=True)
            supervisor.stop_all()


if __name__ == "__main__":
    main()
