#!/usr/bin/env python3
"""The MQTT comparison's table, from the lines bench/mqtt.sh saved: medians over its rounds of
livehub and Mosquitto, and their ratios, with the issue's goals.

    bench/mqtt_report.py RESULTS_DIR [--doc FILE]

Prints the table; with --doc, also writes it between `<!-- mqtt:begin -->` and
`<!-- mqtt:end -->` in FILE. Exits 1 when a scenario has no result for a server.
"""

import re
import statistics
import subprocess
import sys
from datetime import date
from pathlib import Path

BEGIN = "<!-- mqtt:begin -->"
END = "<!-- mqtt:end -->"
TARGETS = ("livehub", "mosquitto")


def parse(line):
    """`scenario key=value ...` (some keys end in `<`, for an upper bound) as a dict."""
    words = line.split()
    fields = {"scenario": words[0]}
    for word in words[1:]:
        key, _, value = word.partition("=")
        fields[key.rstrip("<")] = float(value)
    return fields


def load(directory):
    """{(scenario, target): [fields of each round]}."""
    runs = {}
    for path in sorted(Path(directory).glob("*.txt")):
        match = re.fullmatch(r"(\w+)-(\w+)-round(\d+)", path.stem)
        text = path.read_text().strip()
        if match and text:
            runs.setdefault((match[1], match[2]), []).append(parse(text))
    return runs


def median(runs, scenario, target, key):
    values = [r[key] for r in runs.get((scenario, target), []) if key in r]
    return statistics.median(values) if values else None


def num(x, fmt="{:,.0f}"):
    return "—" if x is None else fmt.format(x)


def ratio(a, b):
    return None if a is None or not b else a / b


def mosquitto_version():
    try:
        out = subprocess.run(["/usr/sbin/mosquitto", "-h"], capture_output=True, text=True, timeout=5)
        found = re.search(r"mosquitto version (\S+)", out.stdout + out.stderr)
        return found[1] if found else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def commit():
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def render(runs):
    rounds = max((len(v) for v in runs.values()), default=0)
    m = lambda scenario, target, key: median(runs, scenario, target, key)  # noqa: E731
    fan = {t: m("fanout", t, "delivered") for t in TARGETS}
    expected = m("fanout", "livehub", "expected")
    subscribers = m("fanout", "livehub", "subscribers")
    connections = m("connect", "livehub", "count")
    rows = [
        (
            f"QoS 0 fan-out to {num(subscribers)} subscribers: delivered of {num(expected)}",
            fan["livehub"],
            fan["mosquitto"],
            "{:,.0f}",
            True,
        ),
        ("same, deliveries per second", m("fanout", "livehub", "deliveries_per_sec"),
         m("fanout", "mosquitto", "deliveries_per_sec"), "{:,.0f}", True),
        ("same, latency p50, ms (upper bound of a power-of-two bucket)",
         ms(m("fanout", "livehub", "p50_us")), ms(m("fanout", "mosquitto", "p50_us")), "≤ {:,.1f}", False),
        ("same, latency p99, ms (same)",
         ms(m("fanout", "livehub", "p99_us")), ms(m("fanout", "mosquitto", "p99_us")), "≤ {:,.1f}", False),
        ("subscribing them one after another, s", m("fanout", "livehub", "connect_secs"),
         m("fanout", "mosquitto", "connect_secs"), "{:.2f}", False),
        ("QoS 1 publishes acknowledged per second (one connection, 100 in flight)",
         m("qos1", "livehub", "acked_per_sec"), m("qos1", "mosquitto", "acked_per_sec"), "{:,.0f}", True),
        (f"connections per second ({num(connections)}, CONNECT to CONNACK, 200 in flight)",
         m("connect", "livehub", "connections_per_sec"), m("connect", "mosquitto", "connections_per_sec"),
         "{:,.0f}", True),
        ("same, time to CONNACK p99, ms", m("connect", "livehub", "p99_ms"), m("connect", "mosquitto", "p99_ms"),
         "{:.2f}", False),
        ("same, slowest, ms", m("connect", "livehub", "max_ms"), m("connect", "mosquitto", "max_ms"),
         "{:.2f}", False),
        (f"server memory per idle connection ({num(connections)}), KiB",
         m("connect", "livehub", "kib_per_connection"), m("connect", "mosquitto", "kib_per_connection"),
         "{:.2f}", False),
    ]
    out = [
        f"Run on {date.today().isoformat()} by `bench/mqtt.sh`: livehub {commit()} against Mosquitto "
        f"{mosquitto_version()}; medians of {rounds} interleaved rounds, each server pinned to CPU 0 and the "
        "load generator to CPU 1.",
        "",
        "| scenario | livehub | Mosquitto | livehub ÷ Mosquitto |",
        "|---|---|---|---|",
    ]
    for label, a, b, fmt, _ in rows:
        out.append(f"| {label} | {num(a, fmt)} | {num(b, fmt)} | {num(ratio(a, b), '{:.2f}')} |")
    goals = [
        (f"QoS 0 fan-out at {num(subscribers)} subscribers", ratio(fan["livehub"], fan["mosquitto"]), True),
        ("QoS 1 publish throughput", ratio(m("qos1", "livehub", "acked_per_sec"),
                                          m("qos1", "mosquitto", "acked_per_sec")), True),
        ("connection rate", ratio(m("connect", "livehub", "connections_per_sec"),
                                  m("connect", "mosquitto", "connections_per_sec")), True),
        ("memory per idle connection", ratio(m("connect", "livehub", "kib_per_connection"),
                                             m("connect", "mosquitto", "kib_per_connection")), False),
    ]
    out += ["", "| goal: ahead of Mosquitto on | livehub ÷ Mosquitto | |", "|---|---|---|"]
    for label, r, higher in goals:
        met = r is not None and (r > 1 if higher else r < 1)
        out.append(f"| {label} | {num(r, '{:.2f}')} ({'higher' if higher else 'lower'} is better) | "
                   f"{'met' if met else '**not met**'} |")
    return "\n".join(out)


def ms(us):
    return None if us is None else us / 1000


def rewrite(doc, section):
    text = doc.read_text()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{doc}: no {BEGIN} ... {END} section")
    doc.write_text(text[: start + len(BEGIN)] + "\n" + section + "\n" + text[end:])


def main(argv):
    if not argv or argv[0].startswith("-") or len(argv) not in (1, 3) or (len(argv) == 3 and argv[1] != "--doc"):
        print("usage: mqtt_report.py RESULTS_DIR [--doc FILE]", file=sys.stderr)
        return 2
    runs = load(argv[0])
    section = render(runs)
    print(section)
    if len(argv) == 3:
        rewrite(Path(argv[2]), section)
        print(f"{argv[2]}: MQTT section written", file=sys.stderr)
    missing = [f"{s} on {t}" for s in ("fanout", "qos1", "connect") for t in TARGETS if (s, t) not in runs]
    if missing:
        print("no result for: " + ", ".join(missing), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
