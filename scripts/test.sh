#!/usr/bin/env bash
# Runs every test suite of livehub. The README's test command; CI runs exactly this.
#
# Installs what it needs when missing (Node.js and Chromium from Debian, the npm packages of the
# client and the dashboard, nginx with nchan and Node's ws for the benchmark peers, and the Python
# packages of tests/requirements.txt in a virtual environment under target/venv, made by
# scripts/venv.sh), so it works on a fresh Debian machine with the Rust toolchain.
#
#   scripts/test.sh            everything
#   LIVEHUB_SKIP_AUTOBAHN=1    skip the Autobahn suite (quick local runs)
#   LIVEHUB_SKIP_JS=1          skip the TypeScript client suite
#   LIVEHUB_SKIP_PACK=1        skip installing the packed client in a scratch project (clients/js/test/pack.sh)
#   LIVEHUB_SKIP_BROWSER=1     skip the dashboard's bundle check and browser tests
#   LIVEHUB_SKIP_BENCH=1       skip the quick benchmark comparison (nchan, Node ws, Python websockets, Mosquitto)
#   LIVEHUB_SKIP_FUZZ=1        skip fuzzing the decoders (FUZZ_SECS, default 10, per target)
#   LIVEHUB_SKIP_ATTACK=1      skip the attack suite (ATTACK_SECS, default 8, per attack)
#   LIVEHUB_SKIP_SIGNALR=1     skip the official SignalR JavaScript client suite
#   LIVEHUB_SKIP_MQTT=1        skip the MQTT suite (Paho, mosquitto_pub/sub, MQTT.js; livehub and Mosquitto)
#   LIVEHUB_SKIP_POSTGRES=1    skip the PostgreSQL store's tests (they need Debian's postgresql,
#                              installed when missing; DATABASE_URL set uses that server instead)
#
# The dashboard's browser tests save screenshots of every page under target/artifacts/dashboard/,
# the Autobahn suite its reports under target/artifacts/autobahn/. Temporary files go under
# target/tmp/ and are removed at the end; Python packages go into target/venv (scripts/venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step says when it starts, in seconds since the run began, so a slow suite shows in CI's log.
step() { printf '\n==> [%4ds] %s\n' "$SECONDS" "$*"; }

# Every LIVEHUB_SKIP_* takes the usual boolean spellings (1/0, true/false, yes/no, on/off, any
# case), as livehub's own variables do; normalised here to the 1 or 0 that the checks below test.
for var in $(compgen -v LIVEHUB_SKIP_ || true); do
  case "${!var,,}" in
    1 | true | yes | on) printf -v "$var" 1 ;;
    "" | 0 | false | no | off) printf -v "$var" 0 ;;
    *) echo "test.sh: $var=${!var} is not a boolean; use 1 or 0" >&2 && exit 2 ;;
  esac
done

# Temporary files of every suite (mktemp, Rust's tempfile, Python's tempfile) go under target/tmp
# instead of /tmp, and are removed when the run ends, however it ends.
TMPDIR="$PWD/target/tmp/test.$$"
mkdir -p "$TMPDIR"
export TMPDIR
# What a suite starts is stopped at the end, however the run ends: `on_exit CMD` registers CMD,
# and the registered commands run last first.
exits=("rm -rf '$TMPDIR'")
on_exit() { exits+=("$1"); }
run_exits() { for ((i = ${#exits[@]} - 1; i >= 0; i--)); do eval "${exits[i]}" || true; done; }
trap run_exits EXIT

skipped() { [[ "${!1:-0}" == 1 ]]; }

# Debian packages the suites need, installed in one go when missing (one `apt-get update`).
debs=()
if ! skipped LIVEHUB_SKIP_JS || ! skipped LIVEHUB_SKIP_BROWSER || ! skipped LIVEHUB_SKIP_SIGNALR \
  || ! skipped LIVEHUB_SKIP_MQTT || ! skipped LIVEHUB_SKIP_BENCH; then
  command -v node >/dev/null || debs+=(nodejs)
  command -v npm >/dev/null || debs+=(npm)
fi
if ! skipped LIVEHUB_SKIP_BROWSER || { ! skipped LIVEHUB_SKIP_JS && ! skipped LIVEHUB_SKIP_PACK; }; then
  [[ -x /usr/bin/chromium ]] || debs+=(chromium)
fi
if ! skipped LIVEHUB_SKIP_MQTT; then
  command -v mosquitto_sub >/dev/null || debs+=(mosquitto-clients)
  [[ -x /usr/sbin/mosquitto ]] || debs+=(mosquitto)
fi
if ! skipped LIVEHUB_SKIP_POSTGRES && [[ -z "${DATABASE_URL:-}" ]]; then
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || debs+=(postgresql)
fi
if ! skipped LIVEHUB_SKIP_BENCH; then
  command -v nginx >/dev/null || debs+=(nginx)
  [[ -e /usr/lib/nginx/modules/ngx_nchan_module.so ]] || debs+=(libnginx-mod-nchan)
  [[ -x /usr/sbin/mosquitto ]] || debs+=(mosquitto)
fi
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || debs+=(python3-venv)
if ((${#debs[@]})); then
  step "Installing Debian packages: ${debs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${debs[@]}" >/dev/null
fi

# Load tests of our own only target loopback, and must not inherit a proxy.
export NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost"

step "Rust: unit and integration tests"
# livehub-postgres needs a PostgreSQL server: its own block below starts one.
cargo test --workspace --all-targets --exclude livehub-postgres

if [[ "${LIVEHUB_SKIP_JS:-0}" != 1 ]]; then
  step "TypeScript client: build and tests against the real server binary"
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt-get update -qq && apt-get install -y -qq nodejs npm
  fi
  cargo build --bin livehub
  (cd clients/js && npm ci --no-audit --no-fund && LIVEHUB_BIN="$PWD/../../target/debug/livehub" npm test)
  if [[ "${LIVEHUB_SKIP_PACK:-0}" != 1 ]]; then
    # npm pack, the tarball installed in a scratch project under target/client-pack, and the
    # README's example run from there under Node 20 with ws, as CommonJS and in Chromium.
    [[ -x /usr/bin/chromium ]] || { apt-get update -qq && apt-get install -y -qq chromium; }
    LIVEHUB_BIN="$PWD/target/debug/livehub" clients/js/test/pack.sh
  fi
fi

if [[ "${LIVEHUB_SKIP_BROWSER:-0}" != 1 ]]; then
  step "Dashboard: the committed bundle matches its sources, and end-to-end tests in headless Chromium"
  missing=()
  command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
  [[ -x /usr/bin/chromium ]] || missing+=(chromium)
  if ((${#missing[@]})); then
    apt-get update -qq && apt-get install -y -qq "${missing[@]}"
  fi
  cargo build --bin livehub
  (
    cd web
    npm ci --no-audit --no-fund
    npm run check
    # The binary embeds web/dist, which is committed so that `cargo run` needs no Node.js; a
    # rebuild from the sources must give the same bytes.
    fresh=$(mktemp -d)
    node build.mjs "$fresh"
    if ! diff -r "$fresh" dist >/dev/null; then
      echo "web/dist is stale: run 'cd web && npm run build' and commit web/dist" >&2
      diff -r "$fresh" dist | head -5 >&2 || true
      exit 1
    fi
    rm -rf "$fresh"
    LIVEHUB_BIN="$PWD/../target/debug/livehub" ARTIFACTS="$PWD/../target/artifacts/dashboard" npm test
  )
fi

if [[ "${LIVEHUB_SKIP_AUTOBAHN:-0}" != 1 ]]; then
  step "WebSocket conformance: Autobahn|Testsuite sections 1-10 against the test echo endpoint"
  cargo build --release --bin livehub
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  log=$(mktemp)
  LIVEHUB_STORE=memory LIVEHUB_MQTT_LISTEN=127.0.0.1:0 target/release/livehub serve --listen "127.0.0.1:$port" --test-endpoints --log warn >"$log" 2>&1 &
  server=$!
  on_exit "kill $server 2>/dev/null"
  for _ in $(seq 1 100); do
    python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/health', timeout=1)" 2>/dev/null && break
    sleep 0.1
  done
  PYTHON=$(scripts/venv.sh) AUTOBAHN_REPORT_DIR="$PWD/target/artifacts/autobahn" \
    tests/autobahn/run.sh "ws://127.0.0.1:$port/_test/echo"
  kill "$server"
  wait "$server" 2>/dev/null || true
fi

if [[ "${LIVEHUB_SKIP_ATTACK:-0}" != 1 ]]; then
  step "Attack suite: hostile clients against the release binary while a legitimate one is served"
  cargo build --release --bin livehub
  ATTACK_SECS="${ATTACK_SECS:-8}" python3 tests/attack/attack.py target/release/livehub
fi

if [[ "${LIVEHUB_SKIP_FUZZ:-0}" != 1 ]]; then
  secs=${FUZZ_SECS:-10}
  step "Fuzzing: every decoder of untrusted bytes (fuzz/), ${secs} s each, from the kept corpus"
  # cargo-fuzz from crates.io. On stable Rust it fuzzes without a sanitizer (-s none): a panic,
  # an abort or a stack overflow still fails the run, and coverage still guides it.
  command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
  for target in $(cargo fuzz list --fuzz-dir fuzz); do
    # New inputs go to a scratch folder; the kept corpus (fuzz/corpus) is only read.
    scratch="target/fuzz-corpus/$target"
    mkdir -p "$scratch"
    log="$scratch.log"
    if ! cargo fuzz run --fuzz-dir fuzz -s none "$target" "$scratch" "fuzz/corpus/$target" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 >"$log" 2>&1; then
      tail -n 40 "$log" >&2
      echo "fuzz target $target failed; the input is in fuzz/artifacts/$target" >&2
      exit 1
    fi
    echo "fuzz $target: $(grep -E '^Done' "$log" | tail -n 1)"
  done
fi

if [[ "${LIVEHUB_SKIP_SIGNALR:-0}" != 1 ]]; then
  step "SignalR: the official @microsoft/signalr client over every transport and both hub protocols"
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt-get update -qq && apt-get install -y -qq nodejs npm
  fi
  cargo build --bin livehub
  LIVEHUB_BIN="$PWD/target/debug/livehub" tests/signalr/run.sh
fi

if [[ "${LIVEHUB_SKIP_MQTT:-0}" != 1 ]]; then
  step "MQTT: Paho, mosquitto_pub/sub and MQTT.js against livehub and Debian's Mosquitto"
  if ! command -v mosquitto_sub >/dev/null || [[ ! -x /usr/sbin/mosquitto ]]; then
    apt-get update -qq && apt-get install -y -qq mosquitto mosquitto-clients
  fi
  # Debian's package starts a Mosquitto on 1883; the suite runs its own on a free port.
  cargo build --bin livehub
  tests/mqtt/run.sh target/debug/livehub
fi

if [[ "${LIVEHUB_SKIP_POSTGRES:-0}" != 1 ]]; then
  step "PostgreSQL store: conformance, restart and outage tests against a real server"
  if [[ -z "${DATABASE_URL:-}" ]]; then
    # A throwaway cluster under target/ on a free loopback port (Debian's postgresql is
    # installed when missing), stopped and removed at the end.
    pg_dir=target/postgres/test-sh
    on_exit "tests/postgres/cluster.sh stop $pg_dir"
    DATABASE_URL=$(tests/postgres/cluster.sh start "$pg_dir")
  fi
  export DATABASE_URL
  cargo test -p livehub-postgres --all-targets
fi

if [[ "${LIVEHUB_SKIP_BENCH:-0}" != 1 ]]; then
  # Tiny sizes: this checks that every peer and scenario still runs, it measures nothing.
  step "Benchmarks: every scenario against livehub and each peer server, with tiny sizes"
  bench/compare.sh --quick
fi

step "all test suites passed"
