#!/usr/bin/env bash
# The official ASP.NET Core SignalR JavaScript client against the livehub binary: every transport,
# both hub protocols, automatic and stateful reconnect; then Python's signalrcore. Needs Node.js 20
# and npm, and Python 3 for scripts/venv.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
if [[ -z "${LIVEHUB_BIN:-}" ]]; then
  cargo build --quiet --bin livehub
  export LIVEHUB_BIN="$root/target/debug/livehub"
fi
cd "$here"
npm ci --no-audit --no-fund --silent
node --test --test-concurrency=1 signalr.test.mjs
# A second, independent client: Python's signalrcore, in the test suites' virtual environment.
"$("$root/scripts/venv.sh")" signalrcore_test.py
