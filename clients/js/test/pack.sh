#!/usr/bin/env bash
# Packs the client the way it would be published and uses it like a stranger would: `npm pack`
# into target/client-pack, a scratch project (a copy of test/pack/) with the tarball installed,
# and the README's example run from there against the real server under Node 20 with `ws`, as
# CommonJS, and in Chromium (test/pack/run.test.mjs).
#
#   clients/js/test/pack.sh     LIVEHUB_BIN (default target/debug/livehub), CHROMIUM
set -euo pipefail
cd "$(dirname "$0")/.."
js=$PWD
root=$(cd ../.. && pwd)
out="$root/target/client-pack"

rm -rf "$out"
mkdir -p "$out"
npm run build --silent
tarball="$out/$(npm pack --silent --pack-destination "$out" | tail -n 1)"

# What the tarball holds: both builds with their types, the README, nothing from src/ or test/.
contents=$(tar tzf "$tarball")
for want in package/package.json package/README.md package/dist/index.js package/dist/index.d.ts \
  package/dist/cjs/index.js package/dist/cjs/index.d.ts package/dist/cjs/package.json; do
  grep -qx "$want" <<<"$contents" || { echo "pack: $want is missing from $tarball" >&2; exit 1; }
done
if grep -E '^package/(src|test)/' <<<"$contents" >&2; then
  echo "pack: sources or tests in $tarball" >&2
  exit 1
fi

scratch="$out/scratch"
mkdir -p "$scratch"
cp test/pack/package.json test/pack/package-lock.json test/pack/tsconfig.json test/pack/run.test.mjs "$scratch/"
(
  cd "$scratch"
  npm ci --no-audit --no-fund --silent
  npm install --no-audit --no-fund --no-save --silent "$tarball"
  LIVEHUB_BIN="${LIVEHUB_BIN:-$root/target/debug/livehub}" HARNESS="$js/test/harness.mjs" README="$js/README.md" \
    node --test --test-concurrency=1 run.test.mjs
)
