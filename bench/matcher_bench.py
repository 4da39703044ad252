"""Benchmark of the matcher alone: the pairing engine in this process, then the matcher process over NATS.

Run `python -m bench.matcher_bench` (add `--quick` for a smoke run). It starts its own nats-server
on a free loopback port, measures the plain NATS request-reply round trip first, and writes
bench/results/matcher.json with every latency also given as a multiple of that round trip.
"""

import argparse
import asyncio
import itertools
import os
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgpack
import nats
from nats.aio.msg import Msg

from bench.common import (
    Latency,
    finish_profiler,
    machine_description,
    nats_round_trip,
    process_cpu_s,
    start_profiler,
    write_results,
)
from services.matcher.pairing import Pairing, PairingRules, Proposal, Started
from services.matcher.waiters import Waiter
from shared import subjects
from shared.codec import decode, encode
from shared.events import ANY_COUNTRY, CallStart, GatewayHeartbeat, MatchConfirm, Matched, MatchEpoch, MatchJoin
from tests.support.nats_server import free_port, local_broker
from tests.support.stack import matcher_env, spawn_service, wait_ready

# Queue depth and country count of the matcher's throughput target.
WAITING = 10_000
COUNTRIES = 50
# Engine pairs per scenario. 200,000 take several seconds, long enough for a steady rate.
ENGINE_PAIRS = 200_000
# Every scenario stops after this many seconds even if its count is not reached.
PHASE_BUDGET_S = 30.0
# One engine tick per this many pairs: the matcher ticks every 0.1 s, so this is generous.
PAIRS_PER_TICK = 2_000
# Share of people in the mixed scenario who accept anyone, while the rest want one country.
ANY_SHARE = 0.4
# Pairs measured one at a time through NATS, then pairs kept in flight for the throughput run.
SEQUENTIAL_PAIRS = 1_000
PIPELINED_PAIRS = 30_000
PIPELINE_WINDOW = 200
# Seconds between the fake gateway's heartbeats. The matcher drops it after 3 missed 1 s beats.
HEARTBEAT_EVERY_S = 0.25
# Seconds the matcher process gets to take the lease and fill its queue.
LEADER_TIMEOUT_S = 20.0
FILL_TIMEOUT_S = 60.0
# Seconds one pair may take through NATS before the run counts it as lost.
PAIR_TIMEOUT_S = 10.0


COUNTRY_NAMES = [f"C{number:02d}" for number in range(COUNTRIES)]


def country(number: int) -> str:
    return COUNTRY_NAMES[number % COUNTRIES]


def make_waiter(session_id: str, own: str, wanted: str, gateway_id: str = "bench-gw") -> Waiter:
    return Waiter(
        session_id=session_id,
        gateway_id=gateway_id,
        boot_id="bench-boot",
        browser_id="b-" + session_id,
        country=own,
        wanted=wanted,
        ip_key="k-" + session_id,
        order=(0, 0),
        joined_at_s=0.0,
    )


# -- the engine alone -----------------------------------------------------------------------------


@dataclass
class EngineRun:
    pairs: int
    elapsed_s: float
    cpu_s: float
    joins: int
    waiting_before: int
    waiting_after: int
    visited_per_join: float
    join_latency: Latency
    matching_join_latency: Latency

    def as_dict(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs,
            "elapsed_s": self.elapsed_s,
            "pairs_per_s": self.pairs / self.elapsed_s if self.elapsed_s else 0.0,
            "cpu_s": self.cpu_s,
            "pairs_per_cpu_s": self.pairs / self.cpu_s if self.cpu_s else 0.0,
            "joins": self.joins,
            "waiting_before": self.waiting_before,
            "waiting_after": self.waiting_after,
            "visited_per_join": self.visited_per_join,
            "join_latency": self.join_latency.as_dict(),
            "matching_join_latency": self.matching_join_latency.as_dict(),
        }


class EngineDriver:
    """Drives a Pairing engine the way the matcher does: join, confirm both sides, tick."""

    def __init__(self) -> None:
        self.engine = Pairing(PairingRules(), time.monotonic)
        self.engine.heartbeat("bench-gw", "bench-boot", draining=False)
        self.sessions = itertools.count()
        self.join_times_s: list[float] = []
        self.matching_join_times_s: list[float] = []
        self.pairs = 0

    def join(self, own: str, wanted: str, prefix: str = "s") -> Proposal | None:
        waiter = make_waiter(f"{prefix}{next(self.sessions)}", own, wanted)
        started = time.perf_counter()
        actions = self.engine.join(waiter)
        elapsed = time.perf_counter() - started
        self.join_times_s.append(elapsed)
        for action in actions:
            if isinstance(action, Proposal):
                self.matching_join_times_s.append(elapsed)
                self.confirm(action)
                return action
        return None

    def confirm(self, proposal: Proposal) -> None:
        self.engine.confirm(proposal.call_id, proposal.first.session_id)
        for action in self.engine.confirm(proposal.call_id, proposal.second.session_id):
            if isinstance(action, Started):
                self.pairs += 1

    def keep_alive(self) -> None:
        self.engine.heartbeat("bench-gw", "bench-boot", draining=False)
        self.engine.tick()

    def reset_samples(self) -> None:
        self.join_times_s.clear()
        self.matching_join_times_s.clear()
        self.pairs = 0
        self.engine.index.visited = 0


def run_ring(pairs: int, budget_s: float) -> EngineRun:
    """Pair against a full queue in which nobody accepts anybody else who waits.

    Person i is from country i and wants country i+1, so 10,000 people wait across 50 countries.
    Each round a newcomer from country i+1 who wants country i (or anyone) takes the oldest of
    them, both sides confirm, and a replacement from country i joins, keeping the depth at 10,000.
    """
    driver = EngineDriver()
    for number in range(WAITING):
        driver.join(country(number), country(number + 1))
    driver.reset_samples()
    waiting_before = len(driver.engine.index)

    rng = random.Random(4)
    cpu_started = time.process_time()
    started = time.perf_counter()
    deadline = started + budget_s
    for round_number in range(pairs):
        slot = rng.randrange(COUNTRIES)
        driver.join(country(slot + 1), ANY_COUNTRY if round_number % 2 else country(slot))
        driver.join(country(slot), country(slot + 1))
        if round_number % PAIRS_PER_TICK == 0:
            driver.keep_alive()
            if time.perf_counter() > deadline:
                break
    elapsed = time.perf_counter() - started
    return _engine_run(driver, elapsed, time.process_time() - cpu_started, waiting_before)


def run_mixed(pairs: int, budget_s: float) -> EngineRun:
    """Pair a random stream against the full ring queue of `run_ring`.

    Newcomers draw their own country uniformly; 40 % accept anyone and the rest want one random
    country. Those who find nobody wait too. When a newcomer takes a ring waiter, a replacement
    joins that ring bucket, so at least 10,000 people keep waiting.
    """
    driver = EngineDriver()
    rng = random.Random(7)
    for number in range(WAITING):
        driver.join(country(number), country(number + 1), prefix="ring-")

    def arrival() -> None:
        wanted = ANY_COUNTRY if rng.random() < ANY_SHARE else country(rng.randrange(COUNTRIES))
        proposal = driver.join(country(rng.randrange(COUNTRIES)), wanted)
        if proposal is None:
            return
        for side in (proposal.first, proposal.second):
            if side.session_id.startswith("ring-"):
                driver.join(side.country, side.wanted, prefix="ring-")

    driver.reset_samples()
    waiting_before = len(driver.engine.index)

    cpu_started = time.process_time()
    started = time.perf_counter()
    deadline = started + budget_s
    arrivals = 0
    while driver.pairs < pairs:
        arrival()
        arrivals += 1
        if arrivals % PAIRS_PER_TICK == 0:
            driver.keep_alive()
            if time.perf_counter() > deadline:
                break
    elapsed = time.perf_counter() - started
    return _engine_run(driver, elapsed, time.process_time() - cpu_started, waiting_before)


def _engine_run(driver: EngineDriver, elapsed_s: float, cpu_s: float, waiting_before: int) -> EngineRun:
    joins = len(driver.join_times_s)
    return EngineRun(
        pairs=driver.pairs,
        elapsed_s=elapsed_s,
        cpu_s=cpu_s,
        joins=joins,
        waiting_before=waiting_before,
        waiting_after=len(driver.engine.index),
        visited_per_join=driver.engine.index.visited / joins if joins else 0.0,
        join_latency=Latency.of_seconds(driver.join_times_s),
        matching_join_latency=Latency.of_seconds(driver.matching_join_times_s),
    )


# -- the matcher process over NATS ----------------------------------------------------------------


class FakeGateway:
    """Plays one gateway towards the matcher: heartbeats, joins, confirms, and times watched sessions.

    Deliveries are read with msgpack directly, not with the checked codec, so the load generator
    costs less per message than the matcher it measures.
    """

    def __init__(self, client: Any, gateway_id: str) -> None:
        self.client = client
        self.gateway_id = gateway_id
        self.boot_id = secrets.token_hex(6)
        self.sessions = (f"{gateway_id}-s{number}" for number in itertools.count())
        self.epoch_seen = asyncio.Event()
        self.unexpected = 0
        # Session id -> (time the join was sent, time `matched` arrived) for timed newcomers.
        self.watched: dict[str, list[float]] = {}
        self.on_started: Callable[[str, float, float, float], None] = lambda *_: None

    async def start(self) -> None:
        await self.client.subscribe(subjects.MATCH_EPOCH, cb=self.on_epoch)
        await self.client.subscribe(subjects.gateway_wildcard(self.gateway_id), cb=self.on_delivery)
        await self.beat()

    async def beat(self) -> None:
        beat = GatewayHeartbeat(gateway_id=self.gateway_id, boot_id=self.boot_id, sessions=0, waiting=0)
        await self.client.publish(subjects.GATEWAY_HEARTBEAT, encode(beat))

    async def heartbeats(self) -> None:
        while True:
            await self.beat()
            await asyncio.sleep(HEARTBEAT_EVERY_S)

    async def on_epoch(self, message: Msg) -> None:
        decode(message.data, MatchEpoch)
        self.epoch_seen.set()

    async def on_delivery(self, message: Msg) -> None:
        now = time.perf_counter()
        _version, kind, fields = msgpack.unpackb(message.data)
        session_id = fields["session_id"]
        if kind == Matched.kind:
            times = self.watched.get(session_id)
            if times is not None:
                times.append(now)
            confirm = MatchConfirm(call_id=fields["call_id"], session_id=session_id, epoch=fields["epoch"])
            await self.client.publish(subjects.MATCH_CONFIRM, encode(confirm))
        elif kind == CallStart.kind:
            times = self.watched.pop(session_id, None)
            if times is not None and len(times) == 2:
                self.on_started(session_id, times[0], times[1], now)
        else:
            self.unexpected += 1

    async def join(self, own: str, wanted: str, session_id: str = "", watch: bool = False) -> None:
        session_id = session_id or next(self.sessions)
        join = MatchJoin(
            session_id=session_id,
            gateway_id=self.gateway_id,
            boot_id=self.boot_id,
            browser_id="b-" + session_id,
            country=own,
            wanted=wanted,
            ip_key="k-" + session_id,
            waiting_since_us=time.time_ns() // 1000,
        )
        payload = encode(join)
        if watch:
            self.watched[session_id] = [time.perf_counter()]
        await self.client.publish(subjects.MATCH_JOIN, payload)


class ClosedLoop:
    """Keeps `window` newcomers in flight until `pairs` calls started or the time budget ran out.

    Each newcomer takes the oldest waiter of one ring bucket. When its call starts, a replacement
    joins that bucket, so the queue stays at its depth, and the next newcomer goes out.
    """

    def __init__(self, gateway: FakeGateway, pairs: int, window: int, budget_s: float) -> None:
        self.gateway = gateway
        self.pairs = pairs
        self.window = window
        self.deadline = time.monotonic() + budget_s
        self.rng = random.Random(11)
        self.launched = 0
        self.matched_s: list[float] = []
        self.start_s: list[float] = []
        self.slots: dict[str, int] = {}
        self.done = asyncio.Event()
        gateway.on_started = self.on_started

    async def run(self) -> None:
        for _ in range(self.window):
            await self.launch()
        await self.done.wait()

    async def launch(self) -> None:
        if self.launched >= self.pairs or time.monotonic() > self.deadline:
            if len(self.start_s) == self.launched:
                self.done.set()
            return
        slot = self.rng.randrange(COUNTRIES)
        wanted = ANY_COUNTRY if self.launched % 2 else country(slot)
        self.launched += 1
        session_id = next(self.gateway.sessions)
        self.slots[session_id] = slot
        await self.gateway.join(country(slot + 1), wanted, session_id, watch=True)

    def on_started(self, session_id: str, sent_at: float, matched_at: float, started_at: float) -> None:
        self.matched_s.append(matched_at - sent_at)
        self.start_s.append(started_at - sent_at)
        slot = self.slots.pop(session_id)
        asyncio.get_running_loop().create_task(self.refill(slot))

    async def refill(self, slot: int) -> None:
        await self.gateway.join(country(slot), country(slot + 1))
        await self.launch()
        if len(self.start_s) >= self.launched and (self.launched >= self.pairs or time.monotonic() > self.deadline):
            self.done.set()


async def queue_length(http: aiohttp.ClientSession, port: int) -> int:
    async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("calln_matcher_queue_length{")))


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout_s} s")
        await asyncio.sleep(0.1)


async def run_loop(gateway: FakeGateway, pairs: int, window: int, matcher_pid: int,
                   profile_path: str | None, rtt_ms: float) -> dict[str, Any]:
    """Run one closed loop against the matcher process and summarise it."""
    loop = ClosedLoop(gateway, pairs, window, PHASE_BUDGET_S)
    profiler = start_profiler(matcher_pid, profile_path) if profile_path else None
    cpu_started = process_cpu_s(matcher_pid)
    started = time.perf_counter()
    timed_out = False
    try:
        await asyncio.wait_for(loop.run(), PHASE_BUDGET_S + PAIR_TIMEOUT_S)
    except TimeoutError:
        # Pairs still in flight now count as lost.
        timed_out = True
    elapsed = time.perf_counter() - started
    matcher_cpu_s = process_cpu_s(matcher_pid) - cpu_started
    completed = len(loop.start_s)
    summary: dict[str, Any] = {
        "window": window,
        "pairs": completed,
        "lost": loop.launched - completed,
        "timed_out": timed_out,
        "elapsed_s": elapsed,
        "pairs_per_s": completed / elapsed if elapsed else 0.0,
        "matcher_cpu_s": matcher_cpu_s,
        "matcher_cpu_per_pair_ms": matcher_cpu_s / completed * 1000 if completed else 0.0,
        "join_to_matched": Latency.of_seconds(loop.matched_s).as_dict(rtt_ms),
        "join_to_start": Latency.of_seconds(loop.start_s).as_dict(rtt_ms),
    }
    if profile_path:
        summary["matcher_profile"] = finish_profiler(profiler, profile_path)
    return summary


async def matcher_over_nats(url: str, rtt_ms: float, quick: bool, log_dir: str) -> dict[str, Any]:
    """Run the real matcher process and drive it as one gateway: first one pair at a time, then many."""
    http_port = free_port()
    env = matcher_env(url, "bench-matcher", http_port, HEARTBEAT_INTERVAL_S="1.0", LOG_LEVEL="warning")
    env.setdefault("IP_KEY_SECRET", os.environ.get("IP_KEY_SECRET") or secrets.token_hex(32))
    process = spawn_service("services.matcher", env, os.path.join(log_dir, "matcher.log"), http_port, "matcher")
    client = await nats.connect(url, name="bench-gateway")
    gateway = FakeGateway(client, "bench-gw")
    heartbeats: asyncio.Task[None] | None = None
    scale = 10 if quick else 1
    try:
        await wait_ready(http_port, LEADER_TIMEOUT_S, process)
        await gateway.start()
        heartbeats = asyncio.create_task(gateway.heartbeats())
        await asyncio.wait_for(gateway.epoch_seen.wait(), LEADER_TIMEOUT_S)

        waiting = WAITING // scale
        for number in range(waiting):
            await gateway.join(country(number), country(number + 1))
        await client.flush()
        async with aiohttp.ClientSession() as http:

            async def filled() -> bool:
                return await queue_length(http, http_port) >= waiting

            await wait_for(filled, FILL_TIMEOUT_S, f"{waiting} people waiting")
            pid = process.process.pid
            sequential = await run_loop(gateway, SEQUENTIAL_PAIRS // scale, 1, pid, None, rtt_ms)
            pipelined = await run_loop(gateway, PIPELINED_PAIRS // scale, PIPELINE_WINDOW, pid,
                                       os.path.join(log_dir, "matcher-profile.txt"), rtt_ms)
            await client.flush()
            waiting_after = await queue_length(http, http_port)
        return {
            "waiting_before": waiting,
            "waiting_after": waiting_after,
            "sequential": sequential,
            "pipelined": pipelined,
            "unexpected_deliveries": gateway.unexpected,
        }
    finally:
        if heartbeats is not None:
            heartbeats.cancel()
        await client.close()
        process.terminate()


# -- main -----------------------------------------------------------------------------------------


async def measure(quick: bool) -> dict[str, Any]:
    pairs = ENGINE_PAIRS // (20 if quick else 1)
    results: dict[str, Any] = {"machine": machine_description(), "quick": quick, "load_before": os.getloadavg()}
    with local_broker() as broker, tempfile.TemporaryDirectory(prefix="calln-bench-") as log_dir:
        rtt = await nats_round_trip(broker.url)
        results["nats_rtt"] = rtt.as_dict()
        print(f"nats round trip: p50 {rtt.p50_ms:.3f} ms, p99 {rtt.p99_ms:.3f} ms", file=sys.stderr)

        ring = run_ring(pairs, PHASE_BUDGET_S)
        results["engine_ring"] = ring.as_dict()
        print(f"engine, full ring queue: {ring.pairs / ring.elapsed_s:,.0f} pairs/s", file=sys.stderr)
        mixed = run_mixed(pairs, PHASE_BUDGET_S)
        results["engine_mixed"] = mixed.as_dict()
        print(f"engine, mixed stream: {mixed.pairs / mixed.elapsed_s:,.0f} pairs/s", file=sys.stderr)

        for key in ("engine_ring", "engine_mixed"):
            for latency in ("join_latency", "matching_join_latency"):
                results[key][latency].update(_ratios(results[key][latency], rtt.p50_ms))

        results["matcher_nats"] = await matcher_over_nats(broker.url, rtt.p50_ms, quick, log_dir)
        pipelined = results["matcher_nats"]["pipelined"]
        print(f"matcher over NATS: {pipelined['pairs_per_s']:,.0f} pairs/s", file=sys.stderr)
    results["load_after"] = os.getloadavg()
    return results


def _ratios(latency: dict[str, Any], unit_ms: float) -> dict[str, float]:
    return {"p50_x_rtt": latency["p50_ms"] / unit_ms, "p99_x_rtt": latency["p99_ms"] / unit_ms}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="run a tenth of every count, as a smoke test")
    args = parser.parse_args(argv)
    results = asyncio.run(measure(args.quick))
    path = write_results("matcher", results)
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
