#!/usr/bin/env bash
# MQTT against Mosquitto, in the same run: QoS 0 fan-out, QoS 1 publish throughput with
# acknowledgements, connection rate and memory per idle connection. Each server is pinned to
# CPU 0 and the load generator (crates/livehub-mqtt/examples/mqtt_bench.rs) to CPU 1; both listen
# on 127.0.0.1 only, and every run ends by itself.
#
#   bench/mqtt.sh [SUBSCRIBERS] [RATE] [SECS]     (defaults: 10000 subscribers, 10 msg/s, 10 s)
set -euo pipefail
cd "$(dirname "$0")/.."

SUBSCRIBERS=${1:-10000}
RATE=${2:-10}
SECS=${3:-10}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

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

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

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
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && return 0
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

for target in livehub mosquitto; do
  for scenario in "fanout $SUBSCRIBERS $RATE $SECS" "qos1 100 $SECS" "connect $SUBSCRIBERS"; do
    port=$(free_port)
    start "$target" "$port"
    args=($scenario)
    [[ ${args[0]} == connect ]] && args+=("$SERVER")
    printf '%-9s ' "$target"
    taskset -c 1 "$BENCH" "${args[0]}" "127.0.0.1:$port" "${args[@]:1}"
    stop
  done
done
