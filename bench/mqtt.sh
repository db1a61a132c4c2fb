#!/usr/bin/env bash
# MQTT against Mosquitto, in the same run: QoS 0 fan-out, QoS 1 publish throughput with
# acknowledgements, connection rate and memory per idle connection. Each server is pinned to
# CPU 0 and the load generator (crates/livehub-mqtt/examples/mqtt_bench.rs) to CPU 1; both listen
# on 127.0.0.1 only, and every run ends by itself.
#
#   bench/mqtt.sh [--runs N] [--doc FILE] [SUBSCRIBERS] [RATE] [SECS]
#       rounds of every scenario on both servers, in turn (default 3 rounds, 10,000 subscribers
#       and connections, 10 publications/s, 10 s); prints the medians and ratios, and with
#       --doc writes them between <!-- mqtt:begin --> and <!-- mqtt:end --> in FILE
#   bench/mqtt.sh --quick
#       one round with 20 subscribers and connections and 1 s runs (a few seconds): checks that
#       every scenario runs on both servers, measures nothing
#
# The raw lines go to target/bench/mqtt/ (target/bench/mqtt-quick/ with --quick).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=3
DOC=""
QUICK=0
args=()
while (($#)); do
  case "$1" in
  --quick) QUICK=1 ;;
  --runs) RUNS=${2:?--runs needs a number}; shift ;;
  --doc) DOC=${2:?--doc needs a file}; shift ;;
  -*) echo "usage: bench/mqtt.sh [--quick] [--runs N] [--doc FILE] [SUBSCRIBERS] [RATE] [SECS]" >&2; exit 2 ;;
  *) args+=("$1") ;;
  esac
  shift
done
if ((QUICK)); then
  RUNS=1
  SUBSCRIBERS=20 RATE=10 SECS=1
  RESULTS=target/bench/mqtt-quick
else
  SUBSCRIBERS=${args[0]:-10000}
  RATE=${args[1]:-10}
  SECS=${args[2]:-10}
  RESULTS=target/bench/mqtt
fi
# 10,000 connections on each side of the loopback need more descriptors than the usual 1024.
ulimit -n "$(ulimit -Hn)"

[[ -x /usr/sbin/mosquitto ]] || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
}
cargo build --release --bin livehub --example mqtt_bench -p livehub -p livehub-mqtt >&2
BENCH=target/release/examples/mqtt_bench
WORK=$(mktemp -d)
SERVER=""
cleanup() {
  [[ -n "$SERVER" ]] && kill "$SERVER" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A port below the ephemeral range: one from it may still be held by the closing sockets of the
# run before (see bench/free_port.py).
free_port() {
  python3 bench/free_port.py
}

cat >"$WORK/livehub.toml" <<'TOML'
# Written by bench/mqtt.sh: every bench connection comes from 127.0.0.1.
shutdown_grace_secs = 2
[limits]
queue_capacity = 4096
[rate_limits]
connections_per_ip = 0
messages_per_sec = 0.0
publishes_per_sec_per_ip = 0.0
reads_per_sec_per_ip = 0.0
[mqtt]
sys_interval_secs = 0
TOML

start() {
  local target=$1 port=$2
  case "$target" in
  livehub)
    LIVEHUB_CONFIG=$WORK/livehub.toml LIVEHUB_STORE=memory LIVEHUB_MQTT_LISTEN=127.0.0.1:$port taskset -c 0 \
      target/release/livehub serve --no-sources --listen 127.0.0.1:0 --log warn >"$WORK/$target.log" 2>&1 &
    ;;
  mosquitto)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 4096\n' "$port" \
      >"$WORK/mosquitto.conf"
    taskset -c 0 /usr/sbin/mosquitto -c "$WORK/mosquitto.conf" >"$WORK/$target.log" 2>&1 &
    ;;
  esac
  SERVER=$!
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  cat "$WORK/$target.log" >&2
  return 1
}

stop() {
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  SERVER=""
}

mkdir -p "$RESULTS"
rm -f "$RESULTS"/*.txt
failed=0
# Interleaved, so that a slow minute of the shared machine hits both servers alike.
for round in $(seq 1 "$RUNS"); do
  for target in livehub mosquitto; do
    for scenario in "fanout $SUBSCRIBERS $RATE $SECS" "qos1 100 $SECS" "connect $SUBSCRIBERS"; do
      port=$(free_port)
      start "$target" "$port"
      words=($scenario)
      [[ ${words[0]} == connect ]] && words+=("$SERVER")
      out=$RESULTS/${words[0]}-$target-round$round.txt
      # The bench stops by itself; the timeout only guards against a hang.
      if timeout -k 5 $((SECS + 120)) taskset -c 1 "$BENCH" "${words[0]}" "127.0.0.1:$port" "${words[@]:1}" >"$out"; then
        printf '%-9s round %s: %s\n' "$target" "$round" "$(cat "$out")" >&2
      else
        echo "$target ${words[0]} round $round failed" >&2
        rm -f "$out"
        failed=1
      fi
      stop
    done
  done
done

python3 bench/mqtt_report.py "$RESULTS" ${DOC:+--doc "$DOC"}
exit "$failed"
