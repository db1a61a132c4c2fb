#!/usr/bin/env bash
# The MQTT suite with real clients, against livehub and against Debian's Mosquitto:
#   - Eclipse Paho (paho-mqtt, tests/requirements.txt): tests/mqtt/paho_suite.py on both brokers,
#     plus the bridge to the web transports and refused permissions on livehub;
#   - Debian's mosquitto_pub and mosquitto_sub over TCP, both directions;
#   - MQTT.js (tests/mqtt/package.json) over WebSocket, both directions.
# Every server listens on 127.0.0.1 only and is stopped at the end.
#
#   tests/mqtt/run.sh [path/to/livehub]     (default target/debug/livehub; builds it if missing)
set -euo pipefail
cd "$(dirname "$0")/../.."

LIVEHUB=${1:-target/debug/livehub}
[[ -x "$LIVEHUB" ]] || cargo build --bin livehub
PYTHON=$(scripts/venv.sh)
WORK=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Starts livehub with the given config on port 0 for both HTTP and MQTT; sets HTTP and MQTT to
# the addresses it logged.
start_livehub() {
  local config=$1 log=$2
  LIVEHUB_CONFIG=$config LIVEHUB_STORE=memory LIVEHUB_MQTT_LISTEN=127.0.0.1:0 NO_COLOR=1 \
    "$LIVEHUB" serve --no-sources --listen 127.0.0.1:0 --log info >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    HTTP=$(sed -n 's|.*dashboard and API at http://\([0-9.:]*\)/.*|\1|p' "$log" | head -1)
    MQTT=$(sed -n 's|.*MQTT listening on \([0-9.:]*\).*|\1|p' "$log" | head -1)
    [[ -n "$HTTP" && -n "$MQTT" ]] && return 0
    sleep 0.1
  done
  echo "livehub did not start:" >&2
  cat "$log" >&2
  return 1
}

echo "== livehub"
echo "" >"$WORK/open.toml"
start_livehub "$WORK/open.toml" "$WORK/livehub.log"
LH_HTTP=$HTTP LH_MQTT=$MQTT
KEY=$("$PYTHON" -c 'import secrets; print("lhk_" + secrets.token_hex(24))')
HASH=$(printf %s "$KEY" | sha256sum | cut -d' ' -f1)
cat >"$WORK/auth.toml" <<EOF
[auth]
required = true
[[auth.api_keys]]
name = "mqtt-suite"
sha256 = "$HASH"
subscribe = ["public/#"]
EOF
start_livehub "$WORK/auth.toml" "$WORK/livehub-auth.log"
LH_AUTH_MQTT=$MQTT

echo "== mosquitto"
MOSQ_PORT=$(free_port)
MOSQ_WS=$(free_port)
cat >"$WORK/mosquitto.conf" <<EOF
listener $MOSQ_PORT 127.0.0.1
listener $MOSQ_WS 127.0.0.1
protocol websockets
allow_anonymous true
persistence false
sys_interval 1
EOF
/usr/sbin/mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $MOSQ_PORT), 1)" 2>/dev/null && break
  sleep 0.1
done

failed=0
run() { "$@" || failed=1; }

echo "== paho-mqtt"
run "$PYTHON" tests/mqtt/paho_suite.py --name livehub --port "${LH_MQTT##*:}" \
  --ws-port "${LH_HTTP##*:}" --ws-path /mqtt --http "http://$LH_HTTP" \
  --auth-port "${LH_AUTH_MQTT##*:}" --auth-key "$KEY"
run "$PYTHON" tests/mqtt/paho_suite.py --name mosquitto --port "$MOSQ_PORT" --ws-port "$MOSQ_WS" --ws-path /

echo "== mosquitto_pub and mosquitto_sub"
# On each broker: mosquitto_pub to mosquitto_sub, both versions. On livehub also across the
# bridge: mosquitto_pub to the HTTP history, and an HTTP publish to mosquitto_sub.
clients_check() {
  local name=$1 port=$2
  for v in mqttv311 mqttv5; do
    local out="$WORK/sub-$name-$v"
    mosquitto_sub -h 127.0.0.1 -p "$port" -V "$v" -t "cli/$v/#" -q 1 -C 2 -W 10 -v >"$out" &
    local sub=$!
    sleep 0.5
    mosquitto_pub -h 127.0.0.1 -p "$port" -V "$v" -t "cli/$v/a" -q 1 -m '{"n":1}'
    mosquitto_pub -h 127.0.0.1 -p "$port" -V "$v" -t "cli/$v/b" -q 0 -m 'plain text'
    if wait "$sub" && diff <(printf 'cli/%s/a {"n":1}\ncli/%s/b plain text\n' "$v" "$v") "$out"; then
      echo "ok   $name mosquitto_pub -> mosquitto_sub ($v)"
    else
      echo "FAIL $name mosquitto_pub -> mosquitto_sub ($v): $(cat "$out")"
      failed=1
    fi
  done
}
clients_check livehub "${LH_MQTT##*:}"
clients_check mosquitto "$MOSQ_PORT"
mosquitto_pub -h 127.0.0.1 -p "${LH_MQTT##*:}" -t cli/bridge -q 1 -m '{"via":"mqtt"}'
if curl -fsS "http://$LH_HTTP/api/channels/cli/bridge/history?limit=1" | grep -q '"via":"mqtt"'; then
  echo "ok   livehub mosquitto_pub -> HTTP history"
else
  echo "FAIL livehub mosquitto_pub -> HTTP history"
  failed=1
fi
mosquitto_sub -h 127.0.0.1 -p "${LH_MQTT##*:}" -t cli/fromweb -C 1 -W 10 >"$WORK/fromweb" &
sub=$!
sleep 0.5
curl -fsS -X POST "http://$LH_HTTP/api/publish" -H 'content-type: application/json' \
  -d '{"channel":"cli/fromweb","data":{"via":"http"}}' >/dev/null
if wait "$sub" && [[ "$(cat "$WORK/fromweb")" == '{"via":"http"}' ]]; then
  echo "ok   livehub HTTP publish -> mosquitto_sub"
else
  echo "FAIL livehub HTTP publish -> mosquitto_sub: $(cat "$WORK/fromweb")"
  failed=1
fi

echo "== MQTT.js over WebSocket"
(cd tests/mqtt && npm ci --no-audit --no-fund --silent)
run node tests/mqtt/mqttjs.mjs livehub "ws://$LH_HTTP/mqtt" "http://$LH_HTTP"
run node tests/mqtt/mqttjs.mjs mosquitto "ws://127.0.0.1:$MOSQ_WS/"

if [[ $failed != 0 ]]; then
  echo "MQTT suite: FAILED"
  exit 1
fi
echo "MQTT suite: every check passed on livehub and Mosquitto"
