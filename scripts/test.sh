#!/usr/bin/env bash
# Runs every test suite of livehub. The README's test command; CI runs exactly this.
#
# Installs what it needs when missing (Node.js, Chromium, the sqlite3 CLI, Maven and a JDK from
# Debian, the npm packages of the client and the dashboard, the Java SignalR client from Maven
# Central into target/m2, nginx with nchan and Node's ws for the benchmark peers, and the Python
# packages of tests/requirements.txt in a virtual environment under target/venv, made by
# scripts/venv.sh), so it works on a fresh Debian machine with the Rust toolchain.
#
#   scripts/test.sh            everything
#   LIVEHUB_SKIP_AUTOBAHN=1    skip the Autobahn suite (quick local runs)
#   LIVEHUB_SKIP_JS=1          skip the TypeScript client suite
#   LIVEHUB_SKIP_PACK=1        skip installing the packed client in a scratch project (clients/js/test/pack.sh)
#   LIVEHUB_SKIP_BROWSER=1     skip the dashboard's bundle check and browser tests
#   LIVEHUB_SKIP_BENCH=1       skip the quick benchmark comparison (nchan, Node ws, Python websockets)
#   LIVEHUB_SKIP_FUZZ=1        skip fuzzing the decoders (FUZZ_SECS, default 10, per target)
#   LIVEHUB_SKIP_ATTACK=1      skip the attack suite (ATTACK_SECS, default 8, per attack)
#   LIVEHUB_SKIP_SIGNALR=1     skip the SignalR suite (the official JavaScript and Java clients, signalrcore)
#   LIVEHUB_SKIP_SIGNALR_JAVA=1  skip only its Java client (Maven and a JDK, installed when missing)
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
if ! skipped LIVEHUB_SKIP_SIGNALR && ! skipped LIVEHUB_SKIP_SIGNALR_JAVA; then
  command -v mvn >/dev/null || debs+=(maven)
  command -v javac >/dev/null || debs+=(default-jdk-headless)
fi
# The dashboard's series test moves a stopped server's history back in time with the sqlite3 CLI.
if ! skipped LIVEHUB_SKIP_BROWSER; then
  command -v sqlite3 >/dev/null || debs+=(sqlite3)
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
fi
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || debs+=(python3-venv)
if ((${#debs[@]})); then
  step "Installing Debian packages: ${debs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${debs[@]}" >/dev/null
fi

# Load tests of our own only target loopback, and must not inherit a proxy.
export NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost"

# What the suites run is compiled first, at once: the workspace's tests (debug), the release
# binary (Autobahn, attack suite, benchmarks) and the fuzz targets. The release and fuzz builds go
# to their own folders and run beside the test build, filling the core a link step leaves idle;
# their logs are printed when they fail.
mkdir -p target/test-logs
declare -A builds=()
build_in_background() {
  local name=$1
  shift
  ("$@") >"target/test-logs/$name.log" 2>&1 &
  builds[$name]=$!
  on_exit "kill ${builds[$name]} 2>/dev/null"
}
# Waits for the background build `name`, failing the run with its log when it failed.
built() {
  local name=$1
  [[ -n "${builds[$name]:-}" ]] || return 0
  if ! wait "${builds[$name]}"; then
    tail -n 60 "target/test-logs/$name.log" >&2
    echo "test.sh: building $name failed (log: target/test-logs/$name.log)" >&2
    exit 1
  fi
  unset "builds[$name]"
}
if ! skipped LIVEHUB_SKIP_AUTOBAHN || ! skipped LIVEHUB_SKIP_ATTACK || ! skipped LIVEHUB_SKIP_BENCH; then
  build_in_background release cargo build --release --bin livehub
fi
if ! skipped LIVEHUB_SKIP_FUZZ; then
  # cargo-fuzz from crates.io. On stable Rust it fuzzes without a sanitizer (-s none): a panic,
  # an abort or a stack overflow still fails the run, and coverage still guides it.
  fuzz_build() {
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
    cargo fuzz build --fuzz-dir fuzz -s none
  }
  build_in_background fuzz fuzz_build
fi

# The PostgreSQL store's tests (crates/livehub-postgres, and the binary on PostgreSQL in
# crates/livehub/tests/store_postgres.rs) share one throwaway cluster under target/ on a free
# loopback port (Debian's postgresql is installed when missing), stopped and removed at the end;
# DATABASE_URL set uses that server instead.
rust_scope=(--workspace)
if skipped LIVEHUB_SKIP_POSTGRES; then
  rust_scope+=(--exclude livehub-postgres)
elif [[ -z "${DATABASE_URL:-}" ]]; then
  pg_dir=target/postgres/test-sh
  on_exit "tests/postgres/cluster.sh stop $pg_dir"
  DATABASE_URL=$(tests/postgres/cluster.sh start "$pg_dir")
  export DATABASE_URL
fi

step "Rust: unit and integration tests (PostgreSQL at ${DATABASE_URL:-none})"
cargo test "${rust_scope[@]}" --all-targets

if [[ "${LIVEHUB_SKIP_JS:-0}" != 1 ]]; then
  step "TypeScript client: build and tests against the real server binary"
  cargo build --bin livehub
  (cd clients/js && npm ci --no-audit --no-fund && LIVEHUB_BIN="$PWD/../../target/debug/livehub" npm test)
  if [[ "${LIVEHUB_SKIP_PACK:-0}" != 1 ]]; then
    # npm pack, the tarball installed in a scratch project under target/client-pack, and the
    # README's example run from there under Node 20 with ws, as CommonJS and in Chromium.
    LIVEHUB_BIN="$PWD/target/debug/livehub" clients/js/test/pack.sh
  fi
fi

if [[ "${LIVEHUB_SKIP_BROWSER:-0}" != 1 ]]; then
  step "Dashboard: the committed bundle matches its sources, and end-to-end tests in headless Chromium"
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
  built release
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
  built release
  ATTACK_SECS="${ATTACK_SECS:-8}" python3 tests/attack/attack.py target/release/livehub
fi

if [[ "${LIVEHUB_SKIP_FUZZ:-0}" != 1 ]]; then
  secs=${FUZZ_SECS:-10}
  step "Fuzzing: every decoder of untrusted bytes (fuzz/), ${secs} s each, two at a time, from the kept corpus"
  built fuzz
  fuzz_one() {
    local target=$1
    # New inputs go to a scratch folder; the kept corpus (fuzz/corpus) is only read.
    local scratch="target/fuzz-corpus/$target"
    mkdir -p "$scratch"
    if ! cargo fuzz run --fuzz-dir fuzz -s none "$target" "$scratch" "fuzz/corpus/$target" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 >"$scratch.log" 2>&1; then
      tail -n 40 "$scratch.log" >&2
      echo "fuzz target $target failed; the input is in fuzz/artifacts/$target" >&2
      return 1
    fi
    echo "fuzz $target: $(grep -E '^Done' "$scratch.log" | tail -n 1)"
  }
  # The two cores fuzz a target each; any failure fails the step once both have finished.
  targets=($(cargo fuzz list --fuzz-dir fuzz))
  for ((i = 0; i < ${#targets[@]}; i += 2)); do
    fuzz_one "${targets[i]}" &
    first=$!
    second_ok=0
    if ((i + 1 < ${#targets[@]})); then fuzz_one "${targets[i + 1]}" || second_ok=1; fi
    wait "$first" && ((second_ok == 0)) || exit 1
  done
fi

if [[ "${LIVEHUB_SKIP_SIGNALR:-0}" != 1 ]]; then
  step "SignalR: the official JavaScript client over every transport and both hub protocols, signalrcore, the official Java client"
  cargo build --bin livehub
  LIVEHUB_BIN="$PWD/target/debug/livehub" tests/signalr/run.sh
fi

if [[ "${LIVEHUB_SKIP_MQTT:-0}" != 1 ]]; then
  step "MQTT: Paho, mosquitto_pub/sub and MQTT.js against livehub and Debian's Mosquitto"
  # Debian's package starts a Mosquitto on 1883; the suite runs its own on a free port.
  cargo build --bin livehub
  tests/mqtt/run.sh target/debug/livehub
fi

if [[ "${LIVEHUB_SKIP_BENCH:-0}" != 1 ]]; then
  # Tiny sizes: this checks that every peer and scenario still runs, it measures nothing.
  step "Benchmarks: every scenario against livehub and each peer server, with tiny sizes"
  built release
  bench/compare.sh --quick
fi

step "all test suites passed"
