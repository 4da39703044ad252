"""Write docs/benchmarks.md and docs/benchmarks-latency.png from the files in bench/results/.

Run `python -m bench.report` after bench.matcher_bench and bench.e2e_bench. `python -m bench`
runs all three.
"""

import os
import sys
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from bench.common import REPO_ROOT, read_results

DOCS_DIR = os.path.join(REPO_ROOT, "docs")
REPORT_PATH = os.path.join(DOCS_DIR, "benchmarks.md")
CHART_NAME = "benchmarks-latency.png"

# Targets for the matcher and the whole stack, stated for a 2-core machine.
TARGET_PAIRS_PER_S = 20_000
TARGET_P50_X_RTT = 4.0
TARGET_P99_X_RTT = 30.0
TARGET_P99_GROWTH = 2.0
TARGET_LEVEL = 1_000
GROWTH_LEVEL = 5_000
PROFILE_ROWS = 8
CPU_GROUPS = ("gateways", "matcher", "nats-server", "load generators", "whole machine")
# Share of all cores busy above which a level counts as CPU-saturated.
SATURATED_SHARE = 0.9


@dataclass(frozen=True, slots=True)
class Check:
    """One target beside its measured figure."""

    target: str
    measured: str
    met: bool
    gap: str


def verdict(check: Check) -> str:
    return "met" if check.met else f"missed ({check.gap})"


def checks(matcher: dict[str, Any] | None, e2e: dict[str, Any] | None) -> list[Check]:
    found: list[Check] = []
    if matcher:
        for key, label in (("engine_ring", "full ring queue"), ("engine_mixed", "mixed stream")):
            rate = matcher[key]["pairs_per_s"]
            found.append(_at_least(f"engine alone, {label}: >= {TARGET_PAIRS_PER_S:,} pairs/s", rate))
        rate = matcher["matcher_nats"]["pipelined"]["pairs_per_s"]
        found.append(_at_least(f"matcher process over NATS: >= {TARGET_PAIRS_PER_S:,} pairs/s", rate))
    levels = {level["clients"]: level for level in (e2e or {}).get("levels", [])}
    base = levels.get(TARGET_LEVEL)
    if base:
        latency = base["join_to_matched"]
        found.append(_at_most(f"join->matched p50 at {TARGET_LEVEL:,} clients <= {TARGET_P50_X_RTT:g}x RTT",
                              latency["p50_x_rtt"], TARGET_P50_X_RTT, latency["p50_ms"]))
        found.append(_at_most(f"join->matched p99 at {TARGET_LEVEL:,} clients <= {TARGET_P99_X_RTT:g}x RTT",
                              latency["p99_x_rtt"], TARGET_P99_X_RTT, latency["p99_ms"]))
    grown = levels.get(GROWTH_LEVEL)
    if base and grown:
        growth = grown["join_to_matched"]["p99_ms"] / base["join_to_matched"]["p99_ms"]
        found.append(Check(
            f"p99 growth from {TARGET_LEVEL:,} to {GROWTH_LEVEL:,} clients < {TARGET_P99_GROWTH:g}x",
            f"{growth:.2f}x",
            growth < TARGET_P99_GROWTH,
            f"{growth / TARGET_P99_GROWTH:.1f} times the allowed growth",
        ))
    return found


def _at_least(target: str, rate: float) -> Check:
    met = rate >= TARGET_PAIRS_PER_S
    if not rate:
        gap = "nothing measured"
    elif rate >= TARGET_PAIRS_PER_S / 2:
        gap = f"{(1 - rate / TARGET_PAIRS_PER_S) * 100:.0f} % below"
    else:
        gap = f"{TARGET_PAIRS_PER_S / rate:.1f} times too slow"
    return Check(target, f"{rate:,.0f} pairs/s", met, gap)


def _at_most(target: str, value: float, limit: float, value_ms: float) -> Check:
    return Check(target, f"{value:.1f}x ({value_ms:.2f} ms)", value <= limit, f"{value / limit:.1f} times the limit")


# -- chart ----------------------------------------------------------------------------------------


def draw_chart(matcher: dict[str, Any] | None, e2e: dict[str, Any] | None, path: str) -> None:
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))

    levels = (e2e or {}).get("levels", [])
    clients = [level["clients"] for level in levels]
    for key, label, style in (("join_to_matched", "every join", "o-"),
                              ("second_joiner_to_matched", "partner already waiting", "s--")):
        left.plot(clients, [level[key]["p50_x_rtt"] for level in levels], style, label=f"p50, {label}")
        left.plot(clients, [level[key]["p99_x_rtt"] for level in levels], style, label=f"p99, {label}", alpha=0.6)
    left.axhline(TARGET_P50_X_RTT, color="green", linestyle=":", label=f"p50 target {TARGET_P50_X_RTT:g}x")
    left.axhline(TARGET_P99_X_RTT, color="red", linestyle=":", label=f"p99 target {TARGET_P99_X_RTT:g}x")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xticks(clients, [f"{count:,}" for count in clients])
    left.minorticks_off()
    left.set_xlabel("connected clients (2 gateways)")
    left.set_ylabel("join -> matched, multiples of the NATS round trip")
    left.set_title("End to end, at the client")
    left.legend(fontsize=7)

    if matcher:
        nats_runs = matcher["matcher_nats"]
        names = ["engine join", "NATS, 1 in flight", f"NATS, {nats_runs['pipelined']['window']} in flight"]
        p50 = [matcher["engine_ring"]["join_latency"]["p50_ms"],
               nats_runs["sequential"]["join_to_matched"]["p50_ms"],
               nats_runs["pipelined"]["join_to_matched"]["p50_ms"]]
        p99 = [matcher["engine_ring"]["join_latency"]["p99_ms"],
               nats_runs["sequential"]["join_to_matched"]["p99_ms"],
               nats_runs["pipelined"]["join_to_matched"]["p99_ms"]]
        positions = range(len(names))
        right.bar([x - 0.2 for x in positions], p50, width=0.4, label="p50")
        right.bar([x + 0.2 for x in positions], p99, width=0.4, label="p99")
        right.axhline(matcher["nats_rtt"]["p50_ms"], color="black", linestyle=":", label="NATS round trip p50")
        right.set_xticks(list(positions), names, fontsize=8)
        right.set_yscale("log")
        right.set_ylabel("ms")
        right.set_title("Matcher alone: join -> matched")
        right.legend(fontsize=7)

    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# -- markdown -------------------------------------------------------------------------------------


def render(matcher: dict[str, Any] | None, e2e: dict[str, Any] | None) -> str:
    machine = (matcher or e2e or {}).get("machine", {})
    lines = [
        "# Benchmarks",
        "",
        "Measured by `make bench` (`python -m bench`): bench/matcher_bench.py, bench/e2e_bench.py, and this page",
        "written by bench/report.py from bench/results/*.json. Every run starts its own nats-server on a",
        "loopback port and measures the plain NATS request-reply round trip (RTT) first; latencies are also",
        "given as multiples of that run's median RTT.",
        "",
        "## Machine",
        "",
        f"- CPU: {machine.get('cpu_model', 'unknown')}, `nproc` = {machine.get('nproc', '?')}, "
        f"{machine.get('memory_gib', '?')} GiB memory",
        f"- Linux {machine.get('kernel', '?')}, Python {machine.get('python', '?')}, "
        f"{machine.get('nats_server', 'nats-server ?')}",
        f"- Load average before and after: matcher run {_load(matcher)}, end-to-end run {_load(e2e)}.",
        "  The machine was shared with other work, so a load above the core count means the figures",
        "  include time spent waiting for a CPU.",
        "",
        "## Targets",
        "",
        "Targets are for a 2-core machine.",
        "",
        "| target | measured | verdict |",
        "| --- | --- | --- |",
    ]
    found = checks(matcher, e2e)
    lines += [f"| {check.target} | {check.measured} | {verdict(check)} |" for check in found]
    lines += ["", f"![latency chart]({CHART_NAME})", ""]
    if any(not check.met for check in found):
        lines += render_misses(matcher, e2e)
    if matcher:
        lines += render_matcher(matcher)
    if e2e:
        lines += render_e2e(e2e)
    return "\n".join(lines) + "\n"


def render_misses(matcher: dict[str, Any] | None, e2e: dict[str, Any] | None) -> list[str]:
    lines = [
        "## Where targets are missed",
        "",
        "A join reaches `matched` at the client only after a confirm round, so that one lost core-NATS",
        "message can never start half a call. The critical path of the side that joins last has 2 websocket",
        "messages (join in, matched out) and 4 one-way NATS deliveries: `match.join`, `gw.<id>.matched`,",
        "`match.confirm` and `gw.<id>.start`. The gateway, the matcher, the partner's gateway, the matcher",
        "again and the gateway handle them in turn. The 4 NATS deliveries alone are about 2 round trips",
        "before any Python handler or Socket.IO frame runs, so a p50 of 4x RTT leaves about 2 RTT for",
        "5 handlers and 2 websocket frames.",
        "",
    ]
    if matcher:
        profile = matcher["matcher_nats"]["pipelined"].get("matcher_profile", {})
        lines += [
            f"- Matcher process over NATS: {_components(profile, 4)}. Most of it is decoding and checking",
            "  4 incoming and encoding 4 outgoing messages per pair, and nats-py. The engine alone, measured",
            "  in the same run, is in the engine table below.",
        ]
    cores = (matcher or e2e or {}).get("machine", {}).get("nproc") or 1
    for level in (e2e or {}).get("levels", []):
        used = level.get("cores_used", {})
        calls_per_s = level["matched_per_s"] / 2
        gateway_ms = used.get("gateways", 0) / calls_per_s * 1000 if calls_per_s else 0.0
        lines += [
            f"- {level['clients']:,} clients: gateway 0 {_components(level.get('gateway_profile', {}), 4)}. "
            f"The matcher {_components(level.get('matcher_profile', {}), 3)}. CPU cores used: gateways "
            f"{used.get('gateways', 0):.2f}, load generators {used.get('load generators', 0):.2f}, whole "
            f"machine {used.get('whole machine', 0):.2f} of {cores}. The two gateways spent {gateway_ms:.1f} ms "
            f"of CPU per call ({calls_per_s:,.0f} calls/s).",
        ]
        if used.get("whole machine", 0) >= SATURATED_SHARE * cores:
            lines += [
                "  The machine was saturated, so most of this latency is time spent waiting for a CPU. At the",
                "  gateways' CPU cost per call, the offered churn of this level needs more cores than the",
                "  machine has once the load generators, which share the same cores, take their part.",
            ]
    return [*lines, ""]


def _components(profile: dict[str, Any], count: int) -> str:
    shares = profile.get("by_component", [])
    if not shares:
        return "(no profile)"
    return "spends " + ", ".join(f"{share * 100:.0f} % in {name}" for name, share in shares[:count])


def _load(results: dict[str, Any] | None) -> str:
    if not results or "load_before" not in results:
        return "not recorded"
    before = results["load_before"][0]
    after = results.get("load_after", [before])[0]
    return f"{before:.1f} and {after:.1f}"


def render_matcher(matcher: dict[str, Any]) -> list[str]:
    rtt = matcher["nats_rtt"]
    ring, mixed = matcher["engine_ring"], matcher["engine_mixed"]
    nats_runs = matcher["matcher_nats"]
    lines = [
        "## Matcher alone",
        "",
        f"NATS round trip: p50 {rtt['p50_ms']:.3f} ms, p99 {rtt['p99_ms']:.3f} ms ({rtt['samples']:,} requests).",
        "",
        "**Engine** (services/matcher/pairing.py called directly, one process, joins and both confirms per pair):",
        "",
        "| scenario | waiting before / after | pairs | pairs/s (wall) | pairs per CPU second | "
        "join p50 / p99 | candidates read per join |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, run in (("full ring queue, 50 countries", ring), ("mixed random stream, 50 countries", mixed)):
        join = run["join_latency"]
        lines.append(
            f"| {label} | {run['waiting_before']:,} / {run['waiting_after']:,} | {run['pairs']:,} | "
            f"{run['pairs_per_s']:,.0f} | {run.get('pairs_per_cpu_s', 0):,.0f} | "
            f"{join['p50_ms'] * 1000:.1f} / {join['p99_ms'] * 1000:.1f} µs | {run['visited_per_join']:.2f} |"
        )
    lines += [
        "",
        "In the full ring queue person i is from country i and wants country i+1, so 10,000 people wait and",
        "no one waiting accepts anyone else waiting. Each newcomer takes the oldest waiter of one bucket and a",
        "replacement keeps the depth at 10,000. The mixed stream sends random newcomers against the same",
        "ring: own country uniform, 40 % accept anyone, the rest want one random country. Newcomers who find",
        "no one wait too, and a replacement follows every ring waiter taken, so the depth only grows.",
        "",
        "**Matcher process over NATS** (`python -m services.matcher`, driven by one fake gateway that joins,",
        "confirms and times each pair; 10,000 people waiting in the ring pattern):",
        "",
        "| run | pairs | pairs/s | matcher CPU per pair | join->matched p50 / p99 | join->start p50 / p99 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, run in (("one pair in flight", nats_runs["sequential"]),
                       (f"{nats_runs['pipelined']['window']} pairs in flight", nats_runs["pipelined"])):
        matched, start = run["join_to_matched"], run["join_to_start"]
        lines.append(
            f"| {label} | {run['pairs']:,} | {run['pairs_per_s']:,.0f} | {run['matcher_cpu_per_pair_ms']:.3f} ms | "
            f"{matched['p50_ms']:.2f} ms ({matched['p50_x_rtt']:.1f}x) / {matched['p99_ms']:.2f} ms "
            f"({matched['p99_x_rtt']:.1f}x) | {start['p50_ms']:.2f} ms ({start['p50_x_rtt']:.1f}x) / "
            f"{start['p99_ms']:.2f} ms ({start['p99_x_rtt']:.1f}x) |"
        )
    lines += ["", "py-spy on the matcher process during the run with many pairs in flight:", ""]
    lines += render_profile(nats_runs["pipelined"].get("matcher_profile", {}))
    return lines


def render_e2e(e2e: dict[str, Any]) -> list[str]:
    lines = [
        "## End to end",
        "",
        "Socket.IO clients (python-socketio over websocket, several load-generator processes) spread over",
        "2 gateway processes, one matcher process and one nats-server. Every client joins with `any`, holds",
        "each call 2 to 5 s, then skips; a client whose partner skipped joins again. Latency runs from the",
        "client's `join` or `skip` to its `matched`. It includes the wait for a partner when nobody was",
        "waiting. The second row of each level keeps only the side that joined last, so its partner was",
        "already waiting and the figure is the system's own latency.",
        "",
        "| clients | latency | p50 | p99 | max | samples | calls/s | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for level in e2e.get("levels", []):
        for key, label in (("join_to_matched", "every join"), ("second_joiner_to_matched", "partner waiting")):
            latency = level[key]
            errors = ", ".join(f"{code} {count}" for code, count in sorted(level["errors"].items())) or "none"
            lines.append(
                f"| {level['connected']:,} of {level['clients']:,} | {label} | {latency['p50_ms']:.2f} ms "
                f"({latency['p50_x_rtt']:.1f}x) | {latency['p99_ms']:.2f} ms ({latency['p99_x_rtt']:.1f}x) | "
                f"{latency['max_ms']:.1f} ms | {latency['samples']:,} | {level['matched_per_s'] / 2:,.0f} | {errors} |"
            )
    lines += [
        "",
        "NATS round trip per level: "
        + ", ".join(f"{level['clients']:,} clients {level['nats_rtt']['p50_ms']:.3f} ms" for level in e2e["levels"])
        + ". `not_in_call` errors are skips that crossed the partner's skip: both sides pressed skip at once.",
        "",
    ]
    lines += [
        "CPU cores used during the measurement, from /proc (the whole-machine figure includes work",
        "outside this benchmark and the py-spy samplers):",
        "",
        "| clients | " + " | ".join(CPU_GROUPS) + " |",
        "| --- |" + " --- |" * len(CPU_GROUPS),
    ]
    for level in e2e.get("levels", []):
        used = level.get("cores_used", {})
        cells = " | ".join(f"{used.get(name, 0):.2f}" for name in CPU_GROUPS)
        lines.append(f"| {level['clients']:,} | {cells} |")
    lines.append("")
    for level in e2e.get("levels", []):
        lines += [f"py-spy at {level['clients']:,} clients, gateway 0:", ""]
        lines += render_profile(level.get("gateway_profile", {}))
        lines += [f"py-spy at {level['clients']:,} clients, matcher:", ""]
        lines += render_profile(level.get("matcher_profile", {}))
    return lines


def render_profile(profile: dict[str, Any]) -> list[str]:
    if "error" in profile or not profile.get("samples"):
        return [f"(no profile: {profile.get('error', 'no samples')})", ""]
    components = ", ".join(f"{name} {share * 100:.0f} %" for name, share in profile.get("by_component", []))
    lines = [
        f"{profile['samples']:,} samples of active threads.",
        "",
        f"Share of samples by component of the innermost frame: {components}.",
        "",
        "Functions by share of samples in the function itself, and in it or its callees:",
        "",
        "| own | function | | total | function |",
        "| --- | --- | --- | --- | --- |",
    ]
    total = [row for row in profile["top_total"] if not _is_frame_of_loop(row[0])]
    for own_row, total_row in zip(profile["top_own"][:PROFILE_ROWS], total[:PROFILE_ROWS], strict=False):
        lines.append(f"| {own_row[1] * 100:.0f} % | `{own_row[0]}` | | {total_row[1] * 100:.0f} % | `{total_row[0]}` |")
    return [*lines, ""]


def _is_frame_of_loop(frame: str) -> bool:
    # Frames every sample passes through (the event loop, runpy, the service runner) carry no information.
    return any(part in frame for part in ("asyncio/", "runpy", "<module>", "run_service", "(runners.py)",
                                          "Runner.run", "_run_module", "_run_code", "Handle._run"))


def main() -> int:
    matcher = read_results("matcher")
    e2e = read_results("e2e")
    if matcher is None and e2e is None:
        print("no results in bench/results/; run python -m bench.matcher_bench first", file=sys.stderr)
        return 1
    os.makedirs(DOCS_DIR, exist_ok=True)
    draw_chart(matcher, e2e, os.path.join(DOCS_DIR, CHART_NAME))
    with open(REPORT_PATH, "w", encoding="utf-8") as handle:
        handle.write(render(matcher, e2e))
    print(f"wrote {REPORT_PATH}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
