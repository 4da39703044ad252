"""One load-generator process for the end-to-end benchmark: many Socket.IO clients that churn.

Each client connects over websocket, sends `join {country: any}`, and when `matched` arrives
stays in the call for a few seconds, then sends `skip` (the gateway puts it back in the queue).
A client whose partner skipped gets `partner_left` and joins again. While the measurement window
is open, each `matched` is recorded as (call id, wall-clock time of the join or skip, wall-clock
time of `matched`), so the parent can tell the side that waited for a partner from the side that
found one waiting, even when the two sides ran in different processes.

Run by bench/e2e_bench.py as `python -m bench.e2e_clients --config JSON`; it writes a JSON
result file and exits by itself at the end of the window.
"""

import argparse
import asyncio
import json
import random
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import socketio

# The web page's origin, which the gateways accept by default.
ORIGIN = "http://127.0.0.1:8080"
# Seconds a client gets to connect and receive `hello` before it counts as failed.
CONNECT_TIMEOUT_S = 20.0
# Seconds every client gets to disconnect at the end.
DISCONNECT_TIMEOUT_S = 20.0
# File descriptors kept free beyond one per client, for the logs, NATS and Python itself.
SPARE_DESCRIPTORS = 256


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Settings of one load generator. Times are wall-clock `time.time()` values."""

    worker: int
    urls: tuple[str, ...]
    clients: int
    connects_per_s: float
    hold_min_s: float
    hold_max_s: float
    measure_from: float
    measure_until: float
    out_path: str


class Recorder:
    """Latencies and counters of one load generator."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.samples: list[tuple[str, float, float]] = []
        self.counts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def measuring(self) -> bool:
        return self.config.measure_from <= time.time() <= self.config.measure_until

    def stopping(self) -> bool:
        return time.time() > self.config.measure_until


class BenchClient:
    """One browser-like client driven by the events the gateway sends."""

    def __init__(self, url: str, browser_id: str, recorder: Recorder, rng: random.Random) -> None:
        self.url = url
        self.browser_id = browser_id
        self.recorder = recorder
        self.rng = rng
        self.sio = socketio.AsyncClient(reconnection=False)
        self.hello = asyncio.Event()
        self.call_id: str | None = None
        self.sent_at = 0.0
        self.sio.on("hello", self.on_hello)
        self.sio.on("matched", self.on_matched)
        self.sio.on("partner_left", self.on_partner_left)
        self.sio.on("error", self.on_error)

    async def connect(self) -> None:
        await self.sio.connect(
            self.url,
            transports=["websocket"],
            auth={"browser_id": self.browser_id},
            headers={"Origin": ORIGIN},
            wait_timeout=CONNECT_TIMEOUT_S,
        )
        await asyncio.wait_for(self.hello.wait(), CONNECT_TIMEOUT_S)

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()

    async def join(self) -> None:
        self.sent_at = time.time()
        self.recorder.counts["joins"] += 1
        await self.sio.emit("join", {"country": "any"})

    async def on_hello(self, data: Any) -> None:
        self.hello.set()

    async def on_matched(self, data: Any) -> None:
        now = time.time()
        call_id = data.get("call_id") if isinstance(data, dict) else None
        if self.recorder.measuring():
            self.recorder.samples.append((str(call_id), self.sent_at, now))
        self.recorder.counts["matched"] += 1
        self.call_id = call_id
        hold_s = self.rng.uniform(self.recorder.config.hold_min_s, self.recorder.config.hold_max_s)
        asyncio.get_running_loop().call_later(hold_s, self._skip_soon, call_id)

    def _skip_soon(self, call_id: str | None) -> None:
        if self.call_id != call_id or call_id is None or self.recorder.stopping() or not self.sio.connected:
            return
        asyncio.get_running_loop().create_task(self.skip())

    async def skip(self) -> None:
        self.call_id = None
        self.sent_at = time.time()
        self.recorder.counts["skips"] += 1
        await self.sio.emit("skip")

    async def on_partner_left(self, data: Any) -> None:
        call_id = data.get("call_id") if isinstance(data, dict) else None
        self.recorder.counts["partner_left"] += 1
        if call_id != self.call_id or self.recorder.stopping():
            return
        self.call_id = None
        await self.join()

    async def on_error(self, data: Any) -> None:
        code = data.get("code", "unknown") if isinstance(data, dict) else "unknown"
        self.recorder.errors[str(code)] += 1


def raise_descriptor_limit(needed: int) -> int:
    """Raise the soft open-file limit up to the hard one, and fail early when it cannot cover `needed`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        raise RuntimeError(f"open-file limit {target} is below the {needed} this worker needs; raise `ulimit -n`")
    return target


async def run_worker(config: WorkerConfig) -> dict[str, Any]:
    raise_descriptor_limit(config.clients + SPARE_DESCRIPTORS)
    recorder = Recorder(config)
    rng = random.Random(config.worker)
    clients = [
        BenchClient(config.urls[number % len(config.urls)], f"bench-{config.worker}-{number:06d}", recorder, rng)
        for number in range(config.clients)
    ]

    async def start(client: BenchClient) -> None:
        try:
            await client.connect()
            await client.join()
        except Exception as exc:
            recorder.errors[f"connect_{type(exc).__name__}"] += 1

    started: list[asyncio.Task[None]] = []
    for client in clients:
        started.append(asyncio.create_task(start(client)))
        await asyncio.sleep(1 / config.connects_per_s)
    await asyncio.gather(*started)
    connected = sum(1 for client in clients if client.sio.connected)

    await asyncio.sleep(max(0.0, config.measure_until - time.time()))
    await asyncio.wait_for(
        asyncio.gather(*(client.close() for client in clients), return_exceptions=True), DISCONNECT_TIMEOUT_S
    )
    return {
        "worker": config.worker,
        "clients": config.clients,
        "connected": connected,
        "samples": recorder.samples,
        "counts": dict(recorder.counts),
        "errors": dict(recorder.errors),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One load generator of the end-to-end benchmark.")
    parser.add_argument("--config", required=True, help="WorkerConfig fields as a JSON object")
    args = parser.parse_args(argv)
    fields = json.loads(args.config)
    fields["urls"] = tuple(fields["urls"])
    config = WorkerConfig(**fields)

    result = asyncio.run(run_worker(config))
    with open(config.out_path, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
