#!/usr/bin/env bash
# The official ASP.NET Core SignalR JavaScript client against the livehub binary: every transport,
# both hub protocols, automatic and stateful reconnect. Needs Node.js 20 and npm.
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
