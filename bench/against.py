"""Prints the medians of `bench/compare.sh --against` as a Markdown table: this build against
the baseline binary, and both against the raw ceiling, from the JSON results in the given folder."""

import json
import pathlib
import statistics
import sys


def main(folder: str) -> None:
    runs: dict[str, list[dict]] = {}
    for path in sorted(pathlib.Path(folder).glob("*.json")):
        result = json.loads(path.read_text())
        if result.get("ok"):
            runs.setdefault(path.stem.split("-round")[0], []).append(result)

    def median(key: str) -> float | None:
        values = [r["delivered_per_sec"] for r in runs.get(key, [])]
        return statistics.median(values) if values else None

    def kib(key: str) -> float | None:
        found = runs.get(key, [])
        return found[0]["memory"]["server_kib_per_connection"] if found else None

    print("| figure | this build | baseline | this ÷ baseline |")
    print("|---|---|---|---|")
    raw = median("fanout-raw-ws-10000")
    for transport in ["ws", "ws-msgpack", "sse"]:
        new, old = median(f"fanout-livehub-{transport}-10000"), median(f"fanout-baseline-{transport}-10000")
        if new and old:
            print(f"| {transport} fan-out at 10,000 subscribers, msg/s (median of 3) "
                  f"| {new:,.0f} | {old:,.0f} | {new / old:.3f} |")
            if transport == "ws" and raw:
                print(f"| ws fan-out ÷ raw ceiling ({raw:,.0f} msg/s, median of 3) "
                      f"| {new / raw:.3f} | {old / raw:.3f} | {new / old:.3f} |")
    for transport in ["ws", "sse"]:
        new, old = kib(f"idle-livehub-{transport}-10000"), kib(f"idle-baseline-{transport}-10000")
        if new and old:
            print(f"| server KiB per idle {transport} connection (10,000) | {new:.2f} | {old:.2f} "
                  f"| {new / old:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1])
