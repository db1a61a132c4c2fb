#!/usr/bin/env python3
"""Writes the results section of docs/benchmarks.md from the JSON files of `livehub bench`.

    python3 bench/report.py RESULTS_DIR docs/benchmarks.md            # rewrite the results section
    python3 bench/report.py --signalr RESULTS_DIR docs/benchmarks.md  # only the SignalR table
    python3 bench/report.py --check RESULTS_DIR                       # only validate the JSON files

The section between `<!-- results:begin -->` and `<!-- results:end -->` is replaced, and the one
between `<!-- signalr:begin -->` and `<!-- signalr:end -->` when the results have SignalR fan-out
runs (`--signalr` replaces that one only); the rest of the file is left as it is. A result that
is missing shows as "—", a failed one as "failed".
Standard library only, so that it runs wherever the bench does.
"""

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

BEGIN = "<!-- results:begin -->"
END = "<!-- results:end -->"
SIGNALR_BEGIN = "<!-- signalr:begin -->"
SIGNALR_END = "<!-- signalr:end -->"
DASH = "—"

# The schema of docs/benchmarks.md: top-level keys, and the keys of each nested object when it
# is not null.
KEYS = [
    "scenario", "target", "transport", "url", "command", "connections", "channels",
    "payload_bytes", "rate", "window", "duration_secs", "published", "published_per_sec",
    "delivered", "delivered_per_sec", "latency_ms", "connect", "memory", "errors", "ok",
]
NESTED = {
    "latency_ms": ["count", "p50", "p90", "p99", "max"],
    "connect": ["per_sec", "p50_ms", "p99_ms", "max_ms"],
    "memory": ["server_pid", "server_rss_base_kib", "server_rss_kib",
               "server_kib_per_connection", "client_kib_per_connection"],
}
# What each scenario's figures come from, so it must not be null there.
NEEDS = {"fanout": "latency_ms", "channels": "latency_ms", "connect": "connect", "idle": "memory"}

# The goals the results are held against.
GOAL_VS_NCHAN = 2.0      # livehub delivers at least 2x nchan's fan-out
GOAL_VS_NODE = 5.0       # ... and 5x node-ws's
GOAL_VS_RAW = 0.70       # ... and at least 70 % of the raw ceiling
GOAL_P99_MS = 20.0       # p99 latency at half the peak rate
GOAL_IDLE_KIB = 8.0      # server memory per idle WebSocket connection
GOAL_SSE_VS_WS = 0.80    # SSE fan-out within 20 % of WebSocket's
GOAL_SIGNALR_VS_WS = 0.80  # SignalR over WebSockets (either protocol) within 20 % of it too

# SignalR over WebSockets, as `livehub bench --transport` names it, and as the tables do.
SIGNALR = [("signalr", "JSON"), ("signalr-msgpack", "MessagePack")]

PEERS = ["nchan", "node-ws", "python-ws", "raw"]


# ---------------------------------------------------------------------------------------------
# Reading and checking.

def problems(result):
    """What is wrong with one result, as a list of messages (empty when it is fine)."""
    if not isinstance(result, dict):
        return ["not a JSON object"]
    found = [f"missing key {key!r}" for key in KEYS if key not in result]
    for key, subkeys in NESTED.items():
        value = result.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            found.append(f"{key!r} is neither an object nor null")
            continue
        found += [f"missing key {key}.{sub}" for sub in subkeys if sub not in value]
    needed = NEEDS.get(result.get("scenario"))
    if needed and result.get(needed) is None:
        found.append(f"{needed!r} is null in a {result.get('scenario')} result")
    if result.get("ok") is not True:
        errors = result.get("errors") or []
        found.append("ok is not true" + (f": {'; '.join(map(str, errors))}" if errors else ""))
    return found


def load(directory):
    """Every result in the directory, in the order the runs wrote them, each with its file name."""
    files = sorted(Path(directory).glob("*.json"), key=lambda p: (p.stat().st_mtime, p.name))
    results = []
    # The file time rides along for the date; the schema has none.
    for path in files:
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            print(f"{path}: unreadable: {error}", file=sys.stderr)
            continue
        if isinstance(result, dict):
            result["_mtime"] = path.stat().st_mtime
            results.append(result)
        else:
            print(f"{path}: not a JSON object", file=sys.stderr)
    return results


def load_averages(directory):
    """The 1-minute load averages compare.sh noted before each run (none when it noted none)."""
    found = []
    try:
        lines = (Path(directory) / "loadavg.tsv").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        try:
            found.append(float(line.split("\t")[1].split()[0]))
        except (IndexError, ValueError):
            pass
    return found


def load_line(averages):
    """One sentence on the load of the shared machine, or None."""
    if not averages:
        return None
    return (f"1-minute load average before each run: {min(averages):.2f} to {max(averages):.2f} "
            "(the benchmark's own server and load generator, a core each, push it towards 2)")


def check(directory):
    files = sorted(Path(directory).glob("*.json"))
    if not files:
        print(f"{directory}: no results", file=sys.stderr)
        return 1
    bad = 0
    for path in files:
        try:
            found = problems(json.loads(path.read_text()))
        except (OSError, ValueError) as error:
            found = [f"unreadable: {error}"]
        for problem in found:
            print(f"{path}: {problem}", file=sys.stderr)
        bad += bool(found)
    print(f"{len(files) - bad} of {len(files)} results valid and ok")
    return 1 if bad else 0


# ---------------------------------------------------------------------------------------------
# Picking results.

class Results:
    def __init__(self, results):
        self.all = results

    def find(self, scenario, target, transport="ws", connections=None, rated=False, channels=None):
        """The result matching; `rated` picks fixed-rate runs instead of closed loops.

        Of runs repeated with the same settings, the median one by delivered msg/s (the whole run,
        so that its latencies go with its rate); otherwise the last.
        """
        matches = []
        for r in self.all:
            if (r.get("scenario"), r.get("target"), r.get("transport")) != (scenario, target, transport):
                continue
            if connections is not None and r.get("connections") != connections:
                continue
            if channels is not None and r.get("channels") != channels:
                continue
            if scenario in ("fanout", "channels") and bool(r.get("rate")) != rated:
                continue
            matches.append(r)
        if len(matches) > 2 and all(ok(r) for r in matches):
            matches.sort(key=lambda r: value(r, "delivered_per_sec") or 0)
            return matches[len(matches) // 2]
        return matches[-1] if matches else None

    def runs(self, scenario, target, transport="ws", connections=None):
        """Every closed-loop run (or every run, for other scenarios) with these settings."""
        return [r for r in self.all
                if (r.get("scenario"), r.get("target"), r.get("transport")) == (scenario, target, transport)
                and (connections is None or r.get("connections") == connections)
                and not (scenario in ("fanout", "channels") and r.get("rate"))]

    def sizes(self, scenario, target, transport="ws"):
        return sorted({r.get("connections") for r in self.all
                       if (r.get("scenario"), r.get("target"), r.get("transport")) == (scenario, target, transport)
                       and not r.get("rate") and isinstance(r.get("connections"), int)})

    def comparison_size(self):
        """The size every target is compared at: the largest of the peers' WebSocket fan-outs."""
        sizes = [n for peer in PEERS if peer != "raw" for n in self.sizes("fanout", peer)]
        if sizes:
            return max(sizes)
        own = self.sizes("fanout", "livehub")
        return 10000 if not own or 10000 in own else max(own)


def ok(r):
    return r is not None and r.get("ok") is True


def value(r, *path):
    """A number from a successful result, or None."""
    if not ok(r):
        return None
    v = r
    for key in path:
        if not isinstance(v, dict):
            return None
        v = v.get(key)
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def cell(r, *path, fmt="{:,.0f}"):
    """A table cell: the number, "—" when the run is missing, "failed" when it failed."""
    if r is None:
        return DASH
    if not ok(r):
        return "failed"
    v = value(r, *path)
    return DASH if v is None else fmt.format(v)


def ratio(a, b):
    return a / b if a is not None and b else None


def times(x):
    return DASH if x is None else f"{x:.2f}×"


def percent(x):
    return DASH if x is None else f"{x * 100:.0f} %"


def verdict(x, good):
    if x is None:
        return DASH
    return "met" if good(x) else "**not met**"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def people(n):
    return f"{n:,}" if isinstance(n, int) else str(n)


# ---------------------------------------------------------------------------------------------
# The machine and the versions.

def run(*cmd):
    """A command's output (stdout, else stderr), stripped, or None when it cannot run."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    out = (done.stdout.strip() or done.stderr.strip()) if done.returncode == 0 else ""
    return out or None


def machine():
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return cpu or platform.processor() or DASH, os.cpu_count() or DASH, platform.release() or DASH


def versions(root):
    def package_lock_ws():
        try:
            lock = json.loads((root / "bench/peers/node-ws/package-lock.json").read_text())
            return lock["packages"]["node_modules/ws"]["version"]
        except (OSError, ValueError, KeyError):
            return None

    nginx = run("nginx", "-v")
    nginx = nginx.split("/", 1)[1] if nginx and "/" in nginx else nginx
    return {
        "livehub": run("git", "-C", str(root), "rev-parse", "--short", "HEAD"),
        "nginx": nginx,
        "nchan": run("dpkg-query", "-W", "-f=${Version}", "libnginx-mod-nchan"),
        "node": run("node", "--version"),
        "ws": package_lock_ws(),
        "python": platform.python_version(),
        "websockets": run("python3", "-c", "import websockets; print(websockets.__version__)"),
    }


# ---------------------------------------------------------------------------------------------
# The section.

def render(results, root, averages=()):
    res = Results(results)
    big = res.comparison_size()
    out = []

    def v(x):
        return x if x else DASH

    cpu, cores, kernel = machine()
    ver = versions(root)
    stamp = max((r.get("_mtime", 0) for r in results), default=0)
    day = datetime.date.fromtimestamp(stamp) if stamp else datetime.date.today()
    # duration_secs is the time actually measured (a little over the asked-for time; 0 for connect).
    durations = sorted({round(d, 1) for r in results
                        if isinstance(d := r.get("duration_secs"), (int, float)) and d > 0})
    payloads = sorted({r.get("payload_bytes") for r in results if r.get("payload_bytes") is not None})

    out.append(f"Run on {day.isoformat()} by `bench/compare.sh`"
               + (f", {', '.join(f'{d:g}' for d in durations)} s measured per run" if durations else "")
               + (f", {', '.join(map(str, payloads))}-byte padding" if payloads else "") + ".")
    out.append("")
    out.append(f"- Machine: {cpu}, {cores} cores, Linux {kernel}")
    out.append(f"- livehub {v(ver['livehub'])}; nginx {v(ver['nginx'])} with libnginx-mod-nchan "
               f"{v(ver['nchan'])}; Node.js {v(ver['node'])} with ws {v(ver['ws'])}; "
               f"Python {v(ver['python'])} with websockets {v(ver['websockets'])}")
    if load_line(averages):
        out.append(f"- {load_line(averages)}")
    out.append("")

    # --- The goals.
    lh = res.find("fanout", "livehub", connections=big)
    peer = {t: res.find("fanout", t, connections=big) for t in PEERS}
    half = res.find("fanout", "livehub", connections=big, rated=True)
    raw_half = res.find("fanout", "raw", connections=big, rated=True)
    idle = res.find("idle", "livehub", connections=big)
    sse = res.find("fanout", "livehub", "sse", connections=big)
    lh_rate = value(lh, "delivered_per_sec")
    vs = {t: ratio(lh_rate, value(peer[t], "delivered_per_sec")) for t in PEERS}
    p99_half = value(half, "latency_ms", "p99")
    p99_raw_half = value(raw_half, "latency_ms", "p99")
    idle_kib = value(idle, "memory", "server_kib_per_connection")
    sse_vs_ws = ratio(value(sse, "delivered_per_sec"), lh_rate)
    signalr = {t: res.find("fanout", "livehub", t, connections=big) for t, _ in SIGNALR}
    signalr_vs_ws = {t: ratio(value(signalr[t], "delivered_per_sec"), lh_rate) for t, _ in SIGNALR}

    out.append("### Goals")
    out.append("")
    out += table(["goal", "measured", "target", ""], [
        [f"fan-out vs nchan (WebSocket, {people(big)} subscribers)", times(vs["nchan"]),
         f"≥ {GOAL_VS_NCHAN:g}×", verdict(vs["nchan"], lambda x: x >= GOAL_VS_NCHAN)],
        ["fan-out vs node-ws", times(vs["node-ws"]), f"≥ {GOAL_VS_NODE:g}×",
         verdict(vs["node-ws"], lambda x: x >= GOAL_VS_NODE)],
        ["fan-out vs raw (the ceiling)", percent(vs["raw"]), f"≥ {GOAL_VS_RAW * 100:.0f} %",
         verdict(vs["raw"], lambda x: x >= GOAL_VS_RAW)],
        ["p99 latency at half the peak rate",
         (DASH if p99_half is None else f"{p99_half:.2f} ms")
         + ("" if p99_raw_half is None else f" (the raw ceiling at the same rate: {p99_raw_half:.2f} ms)"),
         f"< {GOAL_P99_MS:g} ms",
         verdict(p99_half, lambda x: x < GOAL_P99_MS)],
        [f"server memory per idle WebSocket ({people(big)} connections)",
         DASH if idle_kib is None else f"{idle_kib:.2f} KiB", f"< {GOAL_IDLE_KIB:g} KiB",
         verdict(idle_kib, lambda x: x < GOAL_IDLE_KIB)],
        ["SSE fan-out vs WebSocket", DASH if sse_vs_ws is None else f"{sse_vs_ws:.2f}",
         f"≥ {GOAL_SSE_VS_WS:g}", verdict(sse_vs_ws, lambda x: x >= GOAL_SSE_VS_WS)],
    ] + [
        [f"SignalR fan-out vs WebSocket ({protocol})",
         DASH if signalr_vs_ws[t] is None else f"{signalr_vs_ws[t]:.2f}",
         f"≥ {GOAL_SIGNALR_VS_WS:g}", verdict(signalr_vs_ws[t], lambda x: x >= GOAL_SIGNALR_VS_WS)]
        for t, protocol in SIGNALR
    ])
    out.append("")

    # --- Fan-out at the comparison size.
    out.append(f"### Fan-out over WebSocket: {people(big)} subscribers, one channel")
    out.append("")
    out.append("Closed loop (at most 8 publications outstanding to the slowest subscriber): the peak "
               "each server sustains without dropping anyone. python-ws publishes from its own loop.")
    out.append("")
    rows = []
    for target, r in [("livehub", lh)] + [(t, peer[t]) for t in PEERS]:
        rows.append([target, cell(r, "delivered_per_sec"), cell(r, "published_per_sec"),
                     cell(r, "latency_ms", "p50", fmt="{:.2f}"), cell(r, "latency_ms", "p99", fmt="{:.2f}"),
                     "1.00×" if target == "livehub" else times(vs[target])])
    rate = value(half, "rate")
    rows.append([f"livehub at half peak ({people(rate) if rate else DASH}/s)", cell(half, "delivered_per_sec"),
                 cell(half, "published_per_sec"), cell(half, "latency_ms", "p50", fmt="{:.2f}"),
                 cell(half, "latency_ms", "p99", fmt="{:.2f}"), ""])
    rows.append(["raw at the same rate", cell(raw_half, "delivered_per_sec"),
                 cell(raw_half, "published_per_sec"), cell(raw_half, "latency_ms", "p50", fmt="{:.2f}"),
                 cell(raw_half, "latency_ms", "p99", fmt="{:.2f}"), ""])
    out += table(["target", "delivered msg/s", "published/s", "p50 ms", "p99 ms", "livehub ÷ target"], rows)
    out.append("")

    # --- Scaling.
    sizes = sorted(set(res.sizes("fanout", "livehub")) | set(res.sizes("fanout", "raw")))
    out.append("### Scaling: fan-out over WebSocket by number of subscribers")
    out.append("")
    out.append("Per connection is delivered msg/s divided by subscribers: a server that scales "
               "linearly keeps the total flat as this falls.")
    out.append("")
    rows = []
    for n in sizes:
        a, b = res.find("fanout", "livehub", connections=n), res.find("fanout", "raw", connections=n)
        per = lambda r: None if value(r, "delivered_per_sec") is None else value(r, "delivered_per_sec") / n
        rows.append([people(n), cell(a, "delivered_per_sec"), cell(b, "delivered_per_sec"),
                     percent(ratio(value(a, "delivered_per_sec"), value(b, "delivered_per_sec"))),
                     DASH if per(a) is None else f"{per(a):,.1f}", DASH if per(b) is None else f"{per(b):,.1f}",
                     cell(a, "latency_ms", "p99", fmt="{:.2f}")])
    if not rows:
        rows.append([DASH] * 7)
    out += table(["subscribers", "livehub msg/s", "raw msg/s", "livehub ÷ raw", "livehub per conn.",
                  "raw per conn.", "livehub p99 ms"], rows)
    out.append("")

    # --- Transports.
    out.append("### Transports: fan-out by protocol")
    out.append("")
    rows = []
    for transport in ["ws", "ws-msgpack", "sse", "longpoll"] + [t for t, _ in SIGNALR]:
        sizes = res.sizes("fanout", "livehub", transport) or res.sizes("fanout", "nchan", transport)
        n = big if big in sizes or not sizes else max(sizes)
        a = res.find("fanout", "livehub", transport, connections=n)
        # nchan speaks neither livehub's MessagePack nor SignalR.
        livehub_only = transport == "ws-msgpack" or transport.startswith("signalr")
        b = None if livehub_only else res.find("fanout", "nchan", transport, connections=n)
        rows.append([transport, people(n) if sizes else DASH, cell(a, "delivered_per_sec"),
                     cell(a, "latency_ms", "p99", fmt="{:.2f}"),
                     "n/a" if livehub_only else cell(b, "delivered_per_sec"),
                     "n/a" if livehub_only else cell(b, "latency_ms", "p99", fmt="{:.2f}"),
                     times(ratio(value(a, "delivered_per_sec"), value(b, "delivered_per_sec")))])
    out += table(["transport", "subscribers", "livehub msg/s", "livehub p99 ms", "nchan msg/s",
                  "nchan p99 ms", "livehub ÷ nchan"], rows)
    out.append("")

    # --- Channels.
    out.append("### Many channels: subscribers spread over channels, one publisher going round them")
    out.append("")
    rows = []
    for target in ["livehub", "nchan"]:
        found = [r for r in results if r.get("scenario") == "channels" and r.get("target") == target]
        r = found[-1] if found else None
        shape = DASH if r is None else f"{people(r.get('channels'))} × {people((r.get('connections') or 0) // max(1, r.get('channels') or 1))}"
        rows.append([target, shape, cell(r, "delivered_per_sec"), cell(r, "published_per_sec"),
                     cell(r, "latency_ms", "p50", fmt="{:.2f}"), cell(r, "latency_ms", "p99", fmt="{:.2f}")])
    out += table(["target", "channels × subscribers", "delivered msg/s", "published/s", "p50 ms", "p99 ms"], rows)
    out.append("")

    # --- Connect.
    out.append("### Connecting: opening and subscribing WebSocket connections")
    out.append("")
    rows = []
    for target in ["livehub", "nchan", "node-ws", "python-ws", "raw"]:
        for n in sorted({r.get("connections") for r in results
                         if r.get("scenario") == "connect" and r.get("target") == target}):
            r = res.find("connect", target, connections=n)
            rows.append([target, people(n), cell(r, "connect", "per_sec"), cell(r, "connect", "p50_ms", fmt="{:.2f}"),
                         cell(r, "connect", "p99_ms", fmt="{:.2f}"), cell(r, "connect", "max_ms", fmt="{:.2f}")])
    if not rows:
        rows.append([DASH] * 6)
    out += table(["target", "connections", "per second", "p50 ms", "p99 ms", "max ms"], rows)
    out.append("")

    # --- Memory.
    out.append("### Memory per idle connection")
    out.append("")
    out.append("Resident memory of the server process (nchan: its worker) before and after the "
               "connections, divided by their number; the load generator's own alongside.")
    out.append("")
    rows = []
    idles = sorted((r for r in results if r.get("scenario") == "idle"),
                   key=lambda r: (["livehub"] + PEERS).index(r.get("target")) if r.get("target") in ["livehub"] + PEERS else 99)
    seen = set()
    for r in idles:
        key = (r.get("target"), r.get("transport"), r.get("connections"))
        if key in seen:
            continue
        seen.add(key)
        r = res.find("idle", *key)
        rows.append([r.get("target"), r.get("transport"), people(r.get("connections")),
                     cell(r, "memory", "server_kib_per_connection", fmt="{:.2f}"),
                     cell(r, "memory", "client_kib_per_connection", fmt="{:.2f}"),
                     cell(r, "memory", "server_rss_base_kib", fmt="{:,.0f}"),
                     cell(r, "memory", "server_rss_kib", fmt="{:,.0f}")])
    if not rows:
        rows.append([DASH] * 7)
    out += table(["target", "transport", "connections", "server KiB/conn.", "client KiB/conn.",
                  "server RSS before KiB", "server RSS after KiB"], rows)
    out.append("")

    # --- Commands.
    out.append("### Commands")
    out.append("")
    for r in results:
        status = "" if ok(r) else " (failed" + (f": {'; '.join(map(str, r.get('errors') or []))}" if r.get("errors") else "") + ")"
        out.append(f"- `{r.get('command', DASH)}`{status}")
    if not results:
        out.append(f"- {DASH}")
    return "\n".join(out)


def render_signalr(results, root, averages=()):
    """The SignalR table: its fan-out and idle memory against livehub's own WebSocket's."""
    res = Results(results)
    sizes = set(res.sizes("fanout", "livehub", "signalr")) | set(res.sizes("fanout", "livehub", "signalr-msgpack"))
    n = 10000 if 10000 in sizes or not sizes else max(sizes)
    out = []

    cpu, cores, kernel = machine()
    commit = versions(root)["livehub"] or DASH
    stamp = max((r.get("_mtime", 0) for r in results), default=0)
    day = datetime.date.fromtimestamp(stamp) if stamp else datetime.date.today()
    ws_runs = res.runs("fanout", "livehub", "ws", n)
    durations = sorted({round(d, 1) for r in results
                        if isinstance(d := r.get("duration_secs"), (int, float)) and d > 0})
    out.append(f"Run on {day.isoformat()} at livehub {commit} on {cpu} ({cores} cores, Linux {kernel}): "
               f"{people(n)} subscribers on one channel, "
               + (f"{', '.join(f'{d:g}' for d in durations)} s measured per run, " if durations else "")
               + f"{len(ws_runs)} interleaved round{'s' if len(ws_runs) != 1 else ''}, "
               "the median run of each transport."
               + (f" {load_line(averages)}." if load_line(averages) else ""))
    out.append("")

    ws = res.find("fanout", "livehub", "ws", connections=n)
    ws_rate = value(ws, "delivered_per_sec")
    idle_ws = res.find("idle", "livehub", "ws", connections=n)
    idle_ws_kib = value(idle_ws, "memory", "server_kib_per_connection")

    def spread(runs):
        rates = [value(r, "delivered_per_sec") for r in runs]
        if not runs or any(x is None for x in rates):
            return DASH if not runs else "failed"
        return ", ".join(f"{x / 1000:,.0f}k" for x in rates)

    rows = []
    for transport, name in [("ws", "livehub WebSocket (JSON)")] + [(t, f"SignalR over WebSockets ({p})") for t, p in SIGNALR]:
        r = res.find("fanout", "livehub", transport, connections=n)
        idle = res.find("idle", "livehub", transport, connections=n)
        x = ratio(value(r, "delivered_per_sec"), ws_rate)
        kib = value(idle, "memory", "server_kib_per_connection")
        rows.append([f"{name}, `{transport}`", cell(r, "delivered_per_sec"),
                     spread(res.runs("fanout", "livehub", transport, n)),
                     cell(r, "latency_ms", "p50", fmt="{:.2f}"), cell(r, "latency_ms", "p99", fmt="{:.2f}"),
                     DASH if x is None else f"{x:.2f}",
                     "" if transport == "ws" else f"≥ {GOAL_SIGNALR_VS_WS:g}: {verdict(x, lambda y: y >= GOAL_SIGNALR_VS_WS)}",
                     cell(idle, "memory", "server_kib_per_connection", fmt="{:.2f}"),
                     DASH if kib is None or not idle_ws_kib else f"{kib / idle_ws_kib:.2f}"])
    out += table(["transport", "fan-out msg/s (median)", "the runs, in order", "p50 ms", "p99 ms",
                  "÷ WebSocket", "goal", f"server KiB per idle connection ({people(n)})", "÷ WebSocket"], rows)
    return "\n".join(out)


def has_signalr(results):
    return any(r.get("scenario") == "fanout" and r.get("transport") in dict(SIGNALR) for r in results)


def rewrite(doc, section, begin=BEGIN, end_marker=END):
    text = doc.read_text()
    start, end = text.find(begin), text.find(end_marker)
    if start < 0 or end < start:
        raise SystemExit(f"{doc}: no {begin} ... {end_marker} section")
    new = text[: start + len(begin)] + "\n" + section + "\n" + text[end:]
    tmp = doc.with_name(doc.name + ".tmp")
    tmp.write_text(new)
    tmp.replace(doc)


def main(argv):
    if len(argv) == 2 and argv[0] == "--check":
        return check(argv[1])
    signalr_only = bool(argv) and argv[0] == "--signalr"
    if signalr_only:
        argv = argv[1:]
    if len(argv) != 2 or argv[0].startswith("-"):
        print("usage: report.py [--signalr] RESULTS_DIR DOC | report.py --check RESULTS_DIR", file=sys.stderr)
        return 2
    results = load(argv[0])
    averages = load_averages(argv[0])
    root = Path(__file__).resolve().parent.parent
    doc = Path(argv[1])
    if not signalr_only:
        rewrite(doc, render(results, root, averages))
        print(f"{argv[1]}: results section written from {len(results)} results")
    if signalr_only or has_signalr(results):
        rewrite(doc, render_signalr(results, root, averages), SIGNALR_BEGIN, SIGNALR_END)
        print(f"{argv[1]}: SignalR section written from {len(results)} results")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
