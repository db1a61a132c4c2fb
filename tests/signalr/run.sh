#!/usr/bin/env bash
# The official ASP.NET Core SignalR JavaScript client against the livehub binary: every transport,
# both hub protocols, automatic and stateful reconnect; then Python's signalrcore, then the official
# Java client (com.microsoft.signalr, a Maven project in java/). Needs Node.js 20 and npm, Python 3
# for scripts/venv.sh, and a JDK (17 or later) with Maven; scripts/test.sh installs what is missing.
#
#   LIVEHUB_SKIP_SIGNALR_JAVA=1   skip the Java client
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

# A third: the official Java client, with JUnit 5 under Maven. Maven keeps what it downloads in
# target/m2 (nothing goes to ~/.m2), so after the first run the suite needs no network; the
# build goes to target/signalr-java. -q hides Maven's chatter: the test prints an "ok -" line per
# case and a closing count. The sed drops the colour resets Debian's Maven prints even with -B.
skip_java="${LIVEHUB_SKIP_SIGNALR_JAVA:-0}"
if [[ ! "${skip_java,,}" =~ ^(1|true|yes|on)$ ]]; then
  if ! command -v mvn >/dev/null || ! command -v javac >/dev/null; then
    echo "run.sh: the Java client needs Maven and a JDK 17+ (Debian: maven default-jdk-headless)" >&2
    exit 1
  fi
  mvn -q -B -f "$here/java/pom.xml" -Dmaven.repo.local="$root/target/m2" test 2>&1 | sed 's/\x1b\[0m//g'
fi
