"""Helpers shared by the benchmarks: latency summaries, the NATS round trip, result files, py-spy."""

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import nats

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(REPO_ROOT, "bench", "results")

# Round trips sampled for the NATS baseline. 2,000 give a stable p99 in about a second.
NATS_RTT_SAMPLES = 2_000
NATS_RTT_WARMUP = 200
# Seconds one NATS request may take before the baseline run gives up.
NATS_REQUEST_TIMEOUT_S = 2.0
# Functions listed from each py-spy profile, by samples of their own.
PROFILE_TOP_FUNCTIONS = 12
# py-spy samples per second. Its default of 100 gives too few samples in a 10 s phase.
PROFILE_RATE_HZ = 250
# Seconds py-spy gets to write its file after SIGINT.
PROFILER_STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Latency:
    """Percentiles of a latency sample, in milliseconds."""

    samples: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float

    @classmethod
    def of_seconds(cls, values_s: list[float]) -> "Latency":
        if not values_s:
            return cls(0, 0.0, 0.0, 0.0, 0.0, 0.0)
        ordered = sorted(values_s)

        def percentile(fraction: float) -> float:
            return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000

        return cls(
            samples=len(ordered),
            p50_ms=percentile(0.50),
            p90_ms=percentile(0.90),
            p99_ms=percentile(0.99),
            max_ms=ordered[-1] * 1000,
            mean_ms=sum(ordered) / len(ordered) * 1000,
        )

    def ratios(self, unit_ms: float) -> dict[str, float]:
        """Express p50, p99 and max as multiples of `unit_ms`, the median NATS round trip."""
        return {
            "p50_x_rtt": self.p50_ms / unit_ms,
            "p99_x_rtt": self.p99_ms / unit_ms,
            "max_x_rtt": self.max_ms / unit_ms,
        }

    def as_dict(self, unit_ms: float | None = None) -> dict[str, Any]:
        values: dict[str, Any] = asdict(self)
        if unit_ms:
            values.update(self.ratios(unit_ms))
        return values


async def nats_round_trip(url: str, samples: int = NATS_RTT_SAMPLES) -> Latency:
    """Measure request-reply through the broker between two client connections in this process."""
    responder = await nats.connect(url, name="bench-responder")
    requester = await nats.connect(url, name="bench-requester")
    try:

        async def echo(message: Any) -> None:
            await message.respond(message.data)

        await responder.subscribe("bench.echo", cb=echo)
        await responder.flush()
        payload = b"x" * 200  # about the size of an encoded match.join
        for _ in range(NATS_RTT_WARMUP):
            await requester.request("bench.echo", payload, timeout=NATS_REQUEST_TIMEOUT_S)

        durations_s = []
        for _ in range(samples):
            started = time.perf_counter()
            await requester.request("bench.echo", payload, timeout=NATS_REQUEST_TIMEOUT_S)
            durations_s.append(time.perf_counter() - started)
        return Latency.of_seconds(durations_s)
    finally:
        await requester.close()
        await responder.close()


def machine_description() -> dict[str, Any]:
    """Describe the CPU, core count, memory and software versions the figures were measured on."""
    model = ""
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_kb = 0
    with open("/proc/meminfo", encoding="utf-8") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
                break
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    return {
        "cpu_model": model,
        "nproc": int(nproc) if nproc.isdigit() else os.cpu_count(),
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nats_server": nats_server_version(),
    }


def nats_server_version() -> str:
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    try:
        output = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return output.stdout.strip() or output.stderr.strip()


def process_cpu_s(pid: int) -> float:
    """Read the user plus system CPU seconds a process has used so far, or 0.0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            content = stat.read()
    except FileNotFoundError:
        return 0.0
    fields = content.rsplit(")", 1)[1].split()
    # Fields 14 and 15 of proc(5), utime and stime, counted after the ")" that ends field 2.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """Read the CPU seconds all cores have spent on anything but idle and I/O wait since boot."""
    with open("/proc/stat", encoding="ascii") as stat:
        values = [int(value) for value in stat.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def write_results(name: str, results: dict[str, Any]) -> str:
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, f"{name}.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2, sort_keys=True)
    return path


def read_results(name: str) -> dict[str, Any] | None:
    path = os.path.join(RESULTS_DIR, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        loaded: dict[str, Any] = json.load(handle)
        return loaded


def start_profiler(pid: int, output_path: str) -> subprocess.Popen[bytes] | None:
    """Attach py-spy to `pid` until `finish_profiler`, or return None when py-spy is missing."""
    binary = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(binary):
        return None
    command = [binary, "record", "--pid", str(pid), "--format", "raw", "--output", output_path,
               "--rate", str(PROFILE_RATE_HZ), "--nonblocking"]
    with open(output_path + ".log", "wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def finish_profiler(profiler: subprocess.Popen[bytes] | None, output_path: str) -> dict[str, Any]:
    """Stop py-spy (it writes its file on SIGINT) and summarise the top functions by samples."""
    if profiler is None:
        return {"error": "py-spy not found"}
    if profiler.poll() is None:
        profiler.send_signal(signal.SIGINT)
    try:
        profiler.wait(timeout=PROFILER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        profiler.kill()
        profiler.wait(timeout=PROFILER_STOP_TIMEOUT_S)
    if not os.path.exists(output_path) or os.path.getsize(output_path) == 0:
        with open(output_path + ".log", encoding="utf-8", errors="replace") as log:
            return {"error": f"py-spy exited with {profiler.returncode}: {log.read()[-500:]}"}
    return summarise_collapsed(output_path)


# Path prefix of a leaf frame's file -> the component its samples are charged to. The first match wins.
# py-spy writes paths relative to their sys.path entry, such as "nats/aio/client.py".
COMPONENTS = (
    ("services/matcher/pairing.py", "pairing engine"),
    ("services/matcher/waiters.py", "pairing engine"),
    ("sortedcontainers/", "pairing engine"),
    ("shared/codec.py", "msgpack codec and checks"),
    ("msgpack/", "msgpack codec and checks"),
    ("<string>", "dataclass constructors (events)"),
    ("dataclasses.py", "dataclass constructors (events)"),
    ("socketio/", "Socket.IO and Engine.IO"),
    ("engineio/", "Socket.IO and Engine.IO"),
    ("nats/", "nats-py client"),
    ("structlog/", "logging"),
    ("logging/", "logging"),
    ("shared/logging.py", "logging"),
    ("aiohttp/", "aiohttp (HTTP and websocket)"),
    ("prometheus_client/", "metrics"),
    ("asyncio/", "asyncio event loop (epoll, socket writes)"),
    ("selectors.py", "asyncio event loop (epoll, socket writes)"),
    ("services/", "service code"),
    ("shared/", "service code"),
)


def component_of(frame: str) -> str:
    path = frame.rpartition(" (")[2].rsplit(":", 1)[0]
    for prefix, component in COMPONENTS:
        if path.startswith(prefix) or "/" + prefix in path:
            return component
    return "other (interpreter, stdlib)"


def summarise_collapsed(path: str) -> dict[str, Any]:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    components: Counter[str] = Counter()
    samples = 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not count_text.isdigit():
                continue
            count = int(count_text)
            raw_frames = [frame for frame in stack.split(";") if frame]
            if not raw_frames:
                continue
            frames = [_short_frame(frame) for frame in raw_frames]
            samples += count
            own[frames[-1]] += count
            components[component_of(raw_frames[-1])] += count
            for frame in set(frames):
                total[frame] += count
    if not samples:
        return {"samples": 0, "error": "py-spy recorded no samples"}
    return {
        "samples": samples,
        "top_own": [(frame, count / samples) for frame, count in own.most_common(PROFILE_TOP_FUNCTIONS)],
        "top_total": [(frame, count / samples) for frame, count in total.most_common(PROFILE_TOP_FUNCTIONS * 2)],
        "by_component": [(name, count / samples) for name, count in components.most_common()],
    }


def _short_frame(frame: str) -> str:
    # py-spy writes "function (path/to/file.py:line)". Keep the function and the file's tail.
    name, _, location = frame.partition(" (")
    location = location.rstrip(")")
    path, _, _line = location.rpartition(":")
    parts = path.replace("\\", "/").split("/")
    tail = "/".join(parts[-2:]) if parts else path
    return f"{name} ({tail})"

