#!/usr/bin/env bash
# Runs livehub and its peers through `livehub bench`, one server at a time, then MQTT against
# Mosquitto through bench/mqtt.sh, and writes the results into docs/benchmarks.md (see that file
# for what is measured and why).
#
#   bench/compare.sh              # the full comparison (about 27 minutes, MQTT's 3 rounds included)
#   bench/compare.sh --quick      # every scenario and peer with 20 connections and 1 s runs
#   bench/compare.sh --signalr    # only SignalR over WebSockets (JSON and MessagePack) against
#                                 # livehub's own WebSocket: three interleaved rounds of fan-out
#                                 # at 10,000 subscribers and idle memory (about 4 minutes);
#                                 # rewrites only the SignalR table of docs/benchmarks.md
#                                 # (with --quick too: 20 connections, the docs left alone)
#   bench/compare.sh --against B  # this build against another livehub binary B (an earlier
#                                 # commit's), three rounds of the fan-out and memory runs that a
#                                 # change to the fan-out path must not make worse (about 12
#                                 # minutes); prints medians and ratios, leaves the docs alone
#
# Environment: BENCH_DURATION, BENCH_WARMUP (seconds; default 10 and 2, or 1 and 0.5 with --quick).
#
# Each server runs pinned to CPU 0 and the load generator to CPU 1, so that they never compete
# for a core. Everything listens on 127.0.0.1 only, and every process started here is stopped
# before the script exits, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
SIGNALR=0
BASELINE=""
usage() {
    echo "usage: bench/compare.sh [--quick] [--signalr] | --against BINARY" >&2
    exit 2
}
while (($#)); do
    case "$1" in
        --quick) QUICK=1 ;;
        --signalr) SIGNALR=1 ;;
        --against)
            BASELINE=$(realpath "${2:?--against needs the path of a livehub binary}")
            [[ -x "$BASELINE" ]] || { echo "$BASELINE is not an executable" >&2; exit 2; }
            shift
            ;;
        *) usage ;;
    esac
    shift
done
[[ -n "$BASELINE" ]] && ((QUICK || SIGNALR)) && usage

if [[ -n "$BASELINE" ]]; then
    DURATION=${BENCH_DURATION:-10}
    WARMUP=${BENCH_WARMUP:-2}
    RESULTS=target/bench/results-against
elif ((QUICK)); then
    DURATION=${BENCH_DURATION:-1}
    WARMUP=${BENCH_WARMUP:-0.5}
    RESULTS=target/bench/results-quick # never mixes with (or replaces) a full run's results
    ((SIGNALR)) && RESULTS=target/bench/results-signalr-quick
else
    DURATION=${BENCH_DURATION:-10}
    WARMUP=${BENCH_WARMUP:-2}
    RESULTS=target/bench/results
    ((SIGNALR)) && RESULTS=target/bench/results-signalr
fi
LOGS=target/bench/logs
PAYLOAD=64 # padding bytes per publication, for the bench and for python-ws's own loop
LIVEHUB=target/release/livehub
# An error from livehub is its message, not a page of anyhow backtrace (panics keep theirs).
export RUST_LIB_BACKTRACE=0

log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

# ---------------------------------------------------------------------------------------------
# What the peers need, installed only when missing.

install_prerequisites() {
    local missing=()
    command -v taskset >/dev/null || missing+=(util-linux)
    command -v pgrep >/dev/null || missing+=(procps)
    if ((!SIGNALR)); then # --signalr runs livehub alone
        command -v nginx >/dev/null || missing+=(nginx)
        [[ -e /usr/lib/nginx/modules/ngx_nchan_module.so ]] || missing+=(libnginx-mod-nchan)
        command -v node >/dev/null || missing+=(nodejs)
        command -v npm >/dev/null || missing+=(npm)
        [[ -x /usr/sbin/mosquitto ]] || missing+=(mosquitto)
    fi
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    ((SIGNALR)) && return 0

    # ws, exactly as package-lock.json pins it.
    local want have
    want=$(sed -n 's/.*"ws": *"\([^"]*\)".*/\1/p' bench/peers/node-ws/package.json)
    have=$(node -p 'require("./bench/peers/node-ws/node_modules/ws/package.json").version' 2>/dev/null || true)
    if [[ "$have" != "$want" ]]; then
        log "npm ci (ws $want)"
        (cd bench/peers/node-ws && npm ci --no-audit --no-fund --loglevel=error)
    fi

    # websockets, exactly as tests/requirements.txt pins it, in the test suites' virtual
    # environment (never the system interpreter).
    PEER_PY=$(scripts/venv.sh)
}

# ---------------------------------------------------------------------------------------------
# Starting and stopping one server at a time.

WORK=$(mktemp -d -t livehub-bench.XXXXXX)
SERVER_PID=""
MEM_PID=""
FAILED=()

# The script is the servers' parent, so a dead server stays a zombie until `wait`: kill -0 would
# still succeed. Its state in /proc tells.
alive() {
    local state
    state=$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null) || return 1
    [[ -n "$state" && "$state" != Z ]]
}

stop_server() {
    [[ -n "$SERVER_PID" ]] || return 0
    local pid=$SERVER_PID children
    SERVER_PID=""
    # nginx's worker is the master's child: if the master had to be killed, the worker would stay.
    children=$(pgrep -P "$pid" || true)
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        echo "server $pid did not stop within 5 s of SIGTERM; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    for child in $children; do
        if alive "$child"; then kill -KILL "$child" 2>/dev/null || true; fi
    done
}

cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A port for the next server, below the ephemeral range (see bench/free_port.py for why).
free_port() {
    python3 bench/free_port.py
}

# livehub with the per-address limits off: every bench connection comes from 127.0.0.1 (or .2),
# and the publisher sends all publications over one connection.
LIVEHUB_TOML=$WORK/livehub.toml
cat >"$LIVEHUB_TOML" <<'EOF'
# Written by bench/compare.sh.
# Exit within compare.sh's 5 s between SIGTERM and SIGKILL.
shutdown_grace_secs = 2

[rate_limits]
connections_per_ip = 0
messages_per_sec = 0.0
publishes_per_sec_per_ip = 0.0
reads_per_sec_per_ip = 0.0
EOF
# A baseline from before the read budget rejects its key (unknown fields are errors) and has no
# such budget to turn off.
BASELINE_TOML=$WORK/baseline.toml
grep -v '^reads_per_sec_per_ip' "$LIVEHUB_TOML" >"$BASELINE_TOML"

# start_server TARGET PORT LOGFILE: starts it pinned to CPU 0 and waits until the port accepts.
# Sets SERVER_PID, and MEM_PID: the process that holds the connections (nginx's worker).
start_server() {
    local target=$1 port=$2 logfile=$3
    case "$target" in
    livehub | baseline)
        local binary=$LIVEHUB config=$LIVEHUB_TOML
        [[ "$target" == baseline ]] && binary=$BASELINE config=$BASELINE_TOML
        LIVEHUB_STORE=${LIVEHUB_STORE:-memory} LIVEHUB_CONFIG=$config LIVEHUB_MQTT_LISTEN=127.0.0.1:0 taskset -c 0 "$binary" serve --no-sources \
            --listen "127.0.0.1:$port" --log warn >"$logfile" 2>&1 &
        ;;
    raw)
        taskset -c 0 "$LIVEHUB" bench serve-raw --listen "127.0.0.1:$port" >"$logfile" 2>&1 &
        ;;
    nchan)
        local dir=$WORK/nginx-$port
        mkdir -p "$dir"
        sed -e "s|@PORT@|$port|g" -e "s|@PREFIX@|$dir|g" bench/peers/nchan/nginx.conf.template >"$dir/nginx.conf"
        taskset -c 0 nginx -c "$dir/nginx.conf" -p "$dir" >"$logfile" 2>&1 &
        ;;
    node-ws)
        taskset -c 0 node bench/peers/node-ws/server.mjs --port "$port" >"$logfile" 2>&1 &
        ;;
    python-ws)
        taskset -c 0 "$PEER_PY" bench/peers/python_ws.py --port "$port" --rate "${PY_RATE:-0}" \
            --payload "$PAYLOAD" >"$logfile" 2>&1 &
        ;;
    *)
        echo "unknown target $target" >&2
        return 1
        ;;
    esac
    SERVER_PID=$!
    MEM_PID=$SERVER_PID # taskset execs the server, so $! is the server itself

    for _ in $(seq 100); do
        if ! alive "$SERVER_PID"; then
            echo "$target exited during start-up:" >&2
            head -n 20 "$logfile" >&2
            return 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            if [[ "$target" == nchan ]]; then
                # The master listens; the single worker it forks holds the connections.
                for _ in $(seq 50); do
                    MEM_PID=$(pgrep -P "$SERVER_PID" | head -n 1 || true)
                    [[ -n "$MEM_PID" ]] && break
                    sleep 0.1
                done
                [[ -n "$MEM_PID" ]] || { echo "nginx started no worker" >&2; return 1; }
            fi
            return 0
        fi
        sleep 0.1
    done
    echo "$target did not accept connections on 127.0.0.1:$port within 10 s" >&2
    return 1
}

# ---------------------------------------------------------------------------------------------
# One run: a fresh server, one bench invocation, the server stopped again.

# run NAME TARGET SCENARIO TRANSPORT CONNECTIONS [more bench options...]
run() {
    local name=$1 target=$2 scenario=$3 transport=$4 connections=$5
    shift 5
    local port out=$RESULTS/$name.json logfile=$LOGS/$name.server.log
    port=$(free_port)
    log "$name: $target $scenario over $transport, $connections connections"
    # The machine is shared: the report gives the range of these (the previous run's own load
    # still shows in them, as the 1-minute average decays).
    printf '%s\t%s\n' "$name" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/loadavg.tsv"
    if ! start_server "$target" "$port" "$logfile"; then
        stop_server
        FAILED+=("$name (server did not start)")
        return 0
    fi
    # The baseline is another build of livehub, measured as livehub.
    local bench_target=$target
    [[ "$target" == baseline ]] && bench_target=livehub
    local args=(bench "$scenario" --target "$bench_target" --transport "$transport"
        --url "http://127.0.0.1:$port" --connections "$connections"
        --duration "$DURATION" --warmup "$WARMUP" --payload "$PAYLOAD" --json)
    # One source address gives about 28,000 ports towards one server port; two leave room.
    ((connections > 10000)) && args+=(--source-addrs "127.0.0.1,127.0.0.2")
    [[ "$scenario" == idle ]] && args+=(--server-pid "$MEM_PID")
    args+=("$@")
    # The bench stops by itself; the timeout only guards against a hang (connecting included).
    local limit status=0
    limit=$(awk -v w="$WARMUP" -v d="$DURATION" 'BEGIN { print int(w + d + 120) }')
    timeout --foreground -k 5 "$limit" taskset -c 1 "$LIVEHUB" "${args[@]}" >"$out" || status=$?
    if ((status != 0)); then
        echo "$name failed (exit status $status): $LIVEHUB ${args[*]}" >&2
        [[ -s "$out" ]] || rm -f "$out" # no JSON at all: nothing for the report to read
        FAILED+=("$name")
    fi
    stop_server
    if ((status != 0)) && [[ -s "$logfile" ]]; then
        echo "-- last lines of the server's log ($logfile):" >&2
        tail -n 10 "$logfile" >&2
    fi
}

# ---------------------------------------------------------------------------------------------

install_prerequisites
log "cargo build --release --bin livehub"
cargo build --release --bin livehub

ulimit -n "$(ulimit -Hn)" # 15,000 connections need more descriptors than the usual 1024
mkdir -p "$RESULTS" "$LOGS"
rm -f "$RESULTS"/*.json "$RESULTS/loadavg.tsv" # results of an earlier run must not mix with this one's

# Ends the script: the failed runs and exit 1, or exit 0.
finish() {
    if ((${#FAILED[@]})); then
        echo "failed runs:" >&2
        printf '  %s\n' "${FAILED[@]}" >&2
        exit 1
    fi
    log "all runs passed; results in $RESULTS"
    exit 0
}

if [[ -n "$BASELINE" ]]; then
    # Interleaved rounds, so that a slow minute of the shared machine hits every target alike.
    for round in 1 2 3; do
        for target in livehub baseline raw; do
            run "fanout-$target-ws-10000-round$round" "$target" fanout ws 10000 --rate 0
        done
        for target in livehub baseline; do
            run "fanout-$target-ws-msgpack-10000-round$round" "$target" fanout ws-msgpack 10000 --rate 0
            run "fanout-$target-sse-10000-round$round" "$target" fanout sse 10000 --rate 0
        done
    done
    for target in livehub baseline; do
        run "idle-$target-ws-10000" "$target" idle ws 10000
        run "idle-$target-sse-10000" "$target" idle sse 10000
    done
    python3 bench/against.py "$RESULTS"
    finish
fi

# SignalR over WebSockets, JSON and MessagePack, against livehub's own WebSocket in the same
# rounds: the ratio is what to read, and interleaving makes a slow minute of the shared machine
# hit all three alike.
if ((SIGNALR)); then
    if ((QUICK)); then n=20 rounds=(1); else n=10000 rounds=(1 2 3); fi
    for round in "${rounds[@]}"; do
        for transport in ws signalr signalr-msgpack; do
            run "fanout-livehub-$transport-$n-round$round" livehub fanout "$transport" "$n" --rate 0
        done
    done
    for transport in ws signalr signalr-msgpack; do
        run "idle-livehub-$transport-$n" livehub idle "$transport" "$n"
    done
    doc=docs/benchmarks.md
    if ((QUICK)); then
        python3 bench/report.py --check "$RESULTS" || FAILED+=("report.py --check")
        cp "$doc" "$WORK/benchmarks.md"
        doc=$WORK/benchmarks.md
    fi
    python3 bench/report.py --signalr "$RESULTS" "$doc" || FAILED+=("report.py --signalr")
    finish
fi

if ((QUICK)); then
    SIZES=(20)      # fan-out scaling sizes for livehub and raw
    BIG=20          # the size every target is compared at
    LONGPOLL=20
    CHANNELS=(--channels 10)
    IDLE_SIZES=(20)
else
    SIZES=(1000 2000 5000 10000 15000)
    BIG=10000
    LONGPOLL=1000
    CHANNELS=(--channels 1000)
    IDLE_SIZES=(1000 5000 10000 15000)
fi

# Fan-out over WebSocket, closed loop: the peak each server sustains. At the comparison size,
# livehub and the raw ceiling run three times, in turn, and the report takes the median run of
# each: on a shared machine one run can be off by a third.
# SignalR over WebSockets (JSON and MessagePack) runs in the same rounds, so that its ratio to
# livehub's own WebSocket is taken within them.
for n in "${SIZES[@]}"; do
    run "fanout-livehub-ws-$n" livehub fanout ws "$n" --rate 0
    run "fanout-raw-ws-$n" raw fanout ws "$n" --rate 0
    if ((n == BIG)); then
        run "fanout-livehub-signalr-$n" livehub fanout signalr "$n" --rate 0
        run "fanout-livehub-signalr-msgpack-$n" livehub fanout signalr-msgpack "$n" --rate 0
    fi
    if ((n == BIG && !QUICK)); then
        for again in 2 3; do
            run "fanout-livehub-ws-$n-run$again" livehub fanout ws "$n" --rate 0
            run "fanout-raw-ws-$n-run$again" raw fanout ws "$n" --rate 0
            run "fanout-livehub-signalr-$n-run$again" livehub fanout signalr "$n" --rate 0
            run "fanout-livehub-signalr-msgpack-$n-run$again" livehub fanout signalr-msgpack "$n" --rate 0
        done
    fi
done
run "fanout-nchan-ws-$BIG" nchan fanout ws "$BIG" --rate 0
run "fanout-node-ws-ws-$BIG" node-ws fanout ws "$BIG" --rate 0
PY_RATE=0 run "fanout-python-ws-ws-$BIG" python-ws fanout ws "$BIG" --rate 0

# Latency at half of livehub's peak rate, where no queue should build up; the raw ceiling at the
# same rate shows what the machine allows.
half=$(python3 -c '
import json, statistics, sys
rates = []
for path in sys.argv[1:]:
    try:
        r = json.load(open(path))
        if r.get("ok"):
            rates.append(r["published_per_sec"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
print(max(1, int(statistics.median(rates) / 2)) if rates else "")' "$RESULTS/fanout-livehub-ws-$BIG.json" "$RESULTS/fanout-livehub-ws-$BIG-run"*.json)
if [[ -n "$half" ]]; then
    run fanout-half-peak livehub fanout ws "$BIG" --rate "$half"
    run fanout-half-peak-raw raw fanout ws "$BIG" --rate "$half"
else
    echo "fanout-half-peak skipped: fanout-livehub-ws-$BIG has no peak rate" >&2
    FAILED+=("fanout-half-peak (no peak to halve)")
fi

# The other transports.
run "fanout-livehub-ws-msgpack-$BIG" livehub fanout ws-msgpack "$BIG" --rate 0
run "fanout-livehub-sse-$BIG" livehub fanout sse "$BIG" --rate 0
run "fanout-nchan-sse-$BIG" nchan fanout sse "$BIG" --rate 0
run "fanout-livehub-longpoll-$LONGPOLL" livehub fanout longpoll "$LONGPOLL" --rate 0
run "fanout-nchan-longpoll-$LONGPOLL" nchan fanout longpoll "$LONGPOLL" --rate 0

# Many channels with few subscribers each.
run "channels-livehub-ws-$BIG" livehub channels ws "$BIG" "${CHANNELS[@]}" --rate 0
run "channels-nchan-ws-$BIG" nchan channels ws "$BIG" "${CHANNELS[@]}" --rate 0

# Connection rate.
for target in livehub nchan node-ws; do
    run "connect-$target-ws-$BIG" "$target" connect ws "$BIG"
done

# Memory per idle connection.
for n in "${IDLE_SIZES[@]}"; do
    run "idle-livehub-ws-$n" livehub idle ws "$n"
done
run "idle-livehub-sse-$BIG" livehub idle sse "$BIG"
run "idle-livehub-signalr-$BIG" livehub idle signalr "$BIG"
run "idle-livehub-signalr-msgpack-$BIG" livehub idle signalr-msgpack "$BIG"
run "idle-nchan-ws-$BIG" nchan idle ws "$BIG"
run "idle-node-ws-ws-$BIG" node-ws idle ws "$BIG"
PY_RATE=1 run "idle-python-ws-ws-$BIG" python-ws idle ws "$BIG"

# MQTT against Mosquitto: bench/mqtt.sh starts its own servers (pinned the same way) and its own
# load generator, and runs its rounds interleaved.
if ((QUICK)); then
    log "MQTT: livehub against Mosquitto, 20 subscribers and connections, 1 s runs"
    bench/mqtt.sh --quick || FAILED+=("mqtt")
else
    log "MQTT: livehub against Mosquitto, three rounds"
    bench/mqtt.sh --doc docs/benchmarks.md || FAILED+=("mqtt")
fi

# ---------------------------------------------------------------------------------------------

if ((QUICK)); then
    # Check the JSON, and that the report renders, without touching docs/benchmarks.md.
    log "checking the results"
    python3 bench/report.py --check "$RESULTS" || FAILED+=("report.py --check")
    cp docs/benchmarks.md "$WORK/benchmarks.md"
    python3 bench/report.py "$RESULTS" "$WORK/benchmarks.md" || FAILED+=("report.py")
else
    log "writing docs/benchmarks.md"
    python3 bench/report.py "$RESULTS" docs/benchmarks.md || FAILED+=("report.py")
fi

finish
