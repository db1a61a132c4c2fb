#!/usr/bin/env bash
# How long `livehub serve` takes to start on a large SQLite store: fills a data directory with
# PUBLICATIONS publications over CHANNELS channels (crates/livehub-store/examples/fill_store.rs),
# then, ROUNDS times, starts the release binary on it and times spawn → first `/health` answer
# with status ok, after a clean stop (SIGTERM) and after a SIGKILL. After each start it reads the
# newest 100 publications of one channel (a recovery read: the channel is loaded from the store)
# and checks their offsets and data. The same rounds on an empty store give the baseline.
#
#   bench/store_startup.sh [ROUNDS] [PUBLICATIONS] [CHANNELS]     defaults: 5, 1000000, 1000
#
# Prints one line per start and a table of medians. Loopback only, every server stopped and the
# data directories removed at the end, however the run ends. The page cache is warm (the fill
# just wrote the file): these are start-up costs of the process, not of a cold disk.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-5}
PUBLICATIONS=${2:-1000000}
CHANNELS=${3:-1000}

cargo build --release --bin livehub >&2
cargo build --release -p livehub-store --example fill_store >&2
mkdir -p target/tmp
WORK=$(mktemp -d target/tmp/store-startup.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

# Keep everything the fill wrote: the default retention (256 publications, 10 minutes) would
# have the first sweep after the start delete most of it, and later rounds would start on a
# smaller store.
cat >"$WORK/livehub.toml" <<'EOF'
[history]
size = 1000000
max_age_secs = 604800
EOF

echo "filling $WORK/full with $PUBLICATIONS publications over $CHANNELS channels" >&2
target/release/examples/fill_store "$WORK/full" "$PUBLICATIONS" "$CHANNELS" >&2
mkdir -p "$WORK/empty"
echo "store on disk: $(du -sb "$WORK/full" | cut -f1) bytes ($(du -sh "$WORK/full" | cut -f1)) in $WORK/full" >&2
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

python3 - "$ROUNDS" "$((PUBLICATIONS / CHANNELS))" "$WORK" <<'PY'
import http.client, json, os, signal, statistics, subprocess, sys, time

rounds, per_channel, work = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
binary = os.path.abspath("target/release/livehub")
free_port = lambda: int(subprocess.check_output([sys.executable, "bench/free_port.py"]).strip())


def get(port, path, timeout=5):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def start(data_dir):
    """Spawns the server; returns it, its port and the seconds until /health said ok."""
    port = free_port()
    env = dict(os.environ, LIVEHUB_MQTT_LISTEN="127.0.0.1:0", NO_PROXY="127.0.0.1")
    args = [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir,
            "--config", os.path.join(work, "livehub.toml"), "--no-sources", "--log", "warn"]
    log = open(os.path.join(work, "server.log"), "ab")
    spawned = time.monotonic()
    server = subprocess.Popen(args, env=env, stdout=log, stderr=log)
    deadline = spawned + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"livehub exited with {server.returncode}; see {work}/server.log")
        try:
            status, body = get(port, "/health", timeout=1)
            if status == 200 and json.loads(body)["status"] == "ok":
                return server, port, time.monotonic() - spawned
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.002)
    server.kill()
    sys.exit("no /health answer within 60 s")


def recovery_read(port, channel):
    """The newest 100 publications of a filled channel; checks offsets and data."""
    since = max(per_channel - 100, 0)
    started = time.monotonic()
    status, body = get(port, f"/api/channels/store/fill/{channel}/history?since={since}&limit=100")
    took = time.monotonic() - started
    assert status == 200, (status, body[:200])
    answer = json.loads(body)
    offsets = [p["offset"] for p in answer["publications"]]
    assert offsets == list(range(since + 1, per_channel + 1)), offsets[:3]
    assert all(p["data"]["seq"] == p["offset"] for p in answer["publications"])
    assert answer["position"]["offset"] == per_channel, answer["position"]
    return took, answer["position"]["epoch"]


def stop(server, how):
    started = time.monotonic()
    server.send_signal(how)
    server.wait(timeout=60)
    return time.monotonic() - started


results = {}
for store in ("empty", "full"):
    data_dir = os.path.join(work, store)
    for round in range(1, rounds + 1):
        # Start after a clean stop (the fill, or the SIGTERM that ended the round before).
        server, port, clean = start(data_dir)
        read_clean = recovery_read(port, round * 7 % 1000)[0] if store == "full" else None
        stop(server, signal.SIGKILL)
        server, port, killed = start(data_dir)
        read_killed = recovery_read(port, round * 11 % 1000 + 1)[0] if store == "full" else None
        term = stop(server, signal.SIGTERM)
        for key, value in (("after SIGTERM", clean), ("after SIGKILL", killed), ("SIGTERM to exit", term),
                           ("first read, after SIGTERM", read_clean), ("first read, after SIGKILL", read_killed)):
            if value is not None:
                results.setdefault((store, key), []).append(value)
        fmt = lambda v: "-" if v is None else f"{v * 1000:.1f} ms"
        print(f"{store} round {round}: start after SIGTERM {fmt(clean)}, after SIGKILL {fmt(killed)}; "
              f"first read {fmt(read_clean)} / {fmt(read_killed)}; stop {fmt(term)}; "
              f"load {open('/proc/loadavg').read().split()[0]}", flush=True)

print()
print("| store | what | median | range |")
print("|---|---|---|---|")
for (store, key), values in results.items():
    ms = sorted(v * 1000 for v in values)
    print(f"| {store} | {key} | {statistics.median(ms):.1f} ms | {ms[0]:.1f} to {ms[-1]:.1f} ms |")
PY
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
