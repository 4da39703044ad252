"""End-to-end benchmark: Socket.IO clients churning through 2 gateways and the matcher, all real processes.

Run `python -m bench.e2e_bench` (add `--quick` for a smoke run). For each client count it starts
its own nats-server on a free loopback port, a matcher and two gateways, measures the plain NATS
request-reply round trip, then runs load-generator processes (bench/e2e_clients.py) that keep
every client joining and skipping. It writes bench/results/e2e.json with join->matched latency
at the client, also as a multiple of the median NATS round trip, and py-spy summaries of one
gateway and the matcher. Every level stops by itself after its time budget.
"""

import argparse
import asyncio
import json
import math
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from typing import Any

from bench.common import (
    Latency,
    finish_profiler,
    machine_busy_s,
    machine_description,
    nats_round_trip,
    process_cpu_s,
    start_profiler,
    write_results,
)
from bench.e2e_clients import WorkerConfig
from tests.support.nats_server import free_port, local_broker
from tests.support.stack import (
    REPO_ROOT,
    ServiceProcess,
    gateway_env,
    matcher_env,
    spawn_service,
    wait_ready,
)

LEVELS = (1_000, 5_000)
QUICK_LEVELS = (100, 300)
# Seconds of measurement per level, after every client connected and the warm-up passed.
MEASURE_S = 60.0
QUICK_MEASURE_S = 10.0
WARMUP_S = 5.0
# Clients per load-generator process: one event loop handles about this many without lagging.
CLIENTS_PER_WORKER = 1_000
# New connections per second per load generator, so the gateways are not flooded at start.
CONNECTS_PER_S_PER_WORKER = 250.0
# Each client stays in a call for a uniform 2 to 5 s, then skips.
HOLD_MIN_S = 2.0
HOLD_MAX_S = 5.0
# Seconds beyond the planned end after which a load generator is killed.
WORKER_GRACE_S = 60.0
# Seconds the services get to become ready.
READY_TIMEOUT_S = 30.0
GATEWAYS = 2


async def start_stack(nats_url: str, log_dir: str) -> tuple[ServiceProcess, list[ServiceProcess]]:
    secret = os.environ.get("IP_KEY_SECRET") or secrets.token_hex(32)
    matcher_port = free_port()
    matcher = spawn_service(
        "services.matcher",
        matcher_env(nats_url, "bench-matcher", matcher_port, HEARTBEAT_INTERVAL_S="1.0", IP_KEY_SECRET=secret),
        os.path.join(log_dir, "matcher.log"),
        matcher_port,
        "matcher",
    )
    gateways = []
    for index in range(GATEWAYS):
        port = free_port()
        env = gateway_env(nats_url, f"bench-gw{index}", port, HEARTBEAT_INTERVAL_S="1.0", IP_KEY_SECRET=secret)
        gateways.append(spawn_service("services.signalling", env, os.path.join(log_dir, f"gw{index}.log"), port,
                                      f"gw{index}"))
    await wait_ready(matcher_port, READY_TIMEOUT_S, matcher)
    for gateway in gateways:
        await wait_ready(gateway.port, READY_TIMEOUT_S, gateway)
    return matcher, gateways


def spawn_workers(
    level: int, urls: list[str], measure_s: float, log_dir: str
) -> tuple[list[tuple[subprocess.Popen[bytes], str]], float]:
    """Start the load generators and return them with the wall-clock time their measurement starts."""
    workers = math.ceil(level / CLIENTS_PER_WORKER)
    per_worker = math.ceil(level / workers)
    ramp_s = per_worker / CONNECTS_PER_S_PER_WORKER
    measure_from = time.time() + ramp_s + WARMUP_S
    spawned = []
    for worker in range(workers):
        out_path = os.path.join(log_dir, f"worker{worker}.json")
        config = WorkerConfig(
            worker=worker,
            urls=tuple(urls),
            clients=min(per_worker, level - worker * per_worker),
            connects_per_s=CONNECTS_PER_S_PER_WORKER,
            hold_min_s=HOLD_MIN_S,
            hold_max_s=HOLD_MAX_S,
            measure_from=measure_from,
            measure_until=measure_from + measure_s,
            out_path=out_path,
        )
        command = [sys.executable, "-m", "bench.e2e_clients", "--config", json.dumps(asdict(config))]
        with open(os.path.join(log_dir, f"worker{worker}.log"), "wb") as log:
            process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        spawned.append((process, out_path))
    return spawned, measure_from


def wait_workers(workers: list[tuple[subprocess.Popen[bytes], str]], deadline: float) -> list[dict[str, Any]]:
    """Wait for every load generator until `deadline`, kill late ones, and read their results."""
    results = []
    for process, out_path in workers:
        try:
            process.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if os.path.exists(out_path):
            with open(out_path, encoding="utf-8") as handle:
                results.append(json.load(handle))
        else:
            results.append({"worker": -1, "error": f"exited with {process.returncode} and wrote no result"})
    return results


async def run_level(level: int, measure_s: float) -> dict[str, Any]:
    with local_broker() as broker, tempfile.TemporaryDirectory(prefix="calln-e2e-") as log_dir:
        rtt = await nats_round_trip(broker.url)
        matcher, gateways = await start_stack(broker.url, log_dir)
        try:
            urls = [f"http://127.0.0.1:{gateway.port}" for gateway in gateways]
            workers, measure_from = spawn_workers(level, urls, measure_s, log_dir)

            await asyncio.sleep(max(0.0, measure_from - time.time()))
            gateway_profile = os.path.join(log_dir, "gw0-profile.txt")
            matcher_profile = os.path.join(log_dir, "matcher-profile.txt")
            profilers = [
                (start_profiler(gateways[0].process.pid, gateway_profile), gateway_profile),
                (start_profiler(matcher.process.pid, matcher_profile), matcher_profile),
            ]
            groups = {
                "gateways": [gateway.process.pid for gateway in gateways],
                "matcher": [matcher.process.pid],
                "nats-server": [broker.process.pid] if broker.process else [],
                "load generators": [process.pid for process, _ in workers],
            }
            cpu_before = {name: sum(map(process_cpu_s, pids)) for name, pids in groups.items()}
            busy_before = machine_busy_s()
            await asyncio.sleep(measure_s)
            cores_used = {name: (sum(map(process_cpu_s, pids)) - cpu_before[name]) / measure_s
                          for name, pids in groups.items()}
            cores_used["whole machine"] = (machine_busy_s() - busy_before) / measure_s
            summaries = [finish_profiler(profiler, path) for profiler, path in profilers]
            results = wait_workers(workers, time.time() + WORKER_GRACE_S)
        finally:
            for service in (*gateways, matcher):
                try:
                    service.terminate()
                except subprocess.TimeoutExpired:
                    service.kill()
        return summarise_level(level, measure_s, rtt, results, summaries) | {"cores_used": cores_used}


def summarise_level(level: int, measure_s: float, rtt: Latency, results: list[dict[str, Any]],
                    profiles: list[dict[str, Any]]) -> dict[str, Any]:
    samples = [sample for result in results for sample in result.get("samples", [])]
    latencies = [matched - sent for _, sent, matched in samples]
    # Per call, the side that joined last found its partner already waiting: its latency is the
    # system's own, without the wait for a partner that the first side's latency includes.
    by_call: dict[str, list[tuple[float, float]]] = {}
    for call_id, sent, matched in samples:
        by_call.setdefault(call_id, []).append((sent, matched))
    second_joiners = [max(sides)[1] - max(sides)[0] for sides in by_call.values() if len(sides) == 2]
    counts: dict[str, int] = {}
    errors: dict[str, int] = {}
    for result in results:
        for key, value in result.get("counts", {}).items():
            counts[key] = counts.get(key, 0) + value
        for key, value in result.get("errors", {}).items():
            errors[key] = errors.get(key, 0) + value
    latency = Latency.of_seconds(latencies)
    return {
        "second_joiner_to_matched": Latency.of_seconds(second_joiners).as_dict(rtt.p50_ms),
        "clients": level,
        "connected": sum(result.get("connected", 0) for result in results),
        "workers": len(results),
        "measure_s": measure_s,
        "nats_rtt": rtt.as_dict(),
        "join_to_matched": latency.as_dict(rtt.p50_ms),
        "matched_per_s": latency.samples / measure_s,
        "calls_seen_from_both_sides": len(second_joiners),
        "counts": counts,
        "errors": errors,
        "worker_errors": [result["error"] for result in results if "error" in result],
        "gateway_profile": profiles[0],
        "matcher_profile": profiles[1],
    }


async def measure(levels: tuple[int, ...], measure_s: float) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine_description(), "load_before": os.getloadavg(), "levels": []}
    for level in levels:
        summary = await run_level(level, measure_s)
        results["levels"].append(summary)
        for name in ("join_to_matched", "second_joiner_to_matched"):
            latency = summary[name]
            print(
                f"{level} clients, {name}: p50 {latency['p50_ms']:.2f} ms ({latency.get('p50_x_rtt', 0):.1f}x rtt), "
                f"p99 {latency['p99_ms']:.2f} ms ({latency.get('p99_x_rtt', 0):.1f}x rtt)",
                file=sys.stderr,
            )
        print(f"{level} clients: {summary['connected']} connected, errors {summary['errors']}", file=sys.stderr)
    results["load_after"] = os.getloadavg()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"run {QUICK_LEVELS} clients for {QUICK_MEASURE_S} s")
    parser.add_argument("--levels", type=int, nargs="*", help=f"client counts to run (default {LEVELS})")
    parser.add_argument("--measure-s", type=float, help=f"seconds measured per level (default {MEASURE_S})")
    args = parser.parse_args(argv)
    levels = QUICK_LEVELS if args.quick else LEVELS
    measure_s = QUICK_MEASURE_S if args.quick else MEASURE_S
    if args.levels:
        levels = tuple(args.levels)
    if args.measure_s:
        measure_s = args.measure_s

    results = asyncio.run(measure(levels, measure_s))
    results["quick"] = args.quick
    path = write_results("e2e", results)
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
