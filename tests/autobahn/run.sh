#!/usr/bin/env bash
# Autobahn|Testsuite WebSocket conformance run against a live server, using the
# `kosoku` runner from PyPI (Autobahn's own case files, driven from Rust/PyO3
# under Python 3).
#
# usage: tests/autobahn/run.sh ws://127.0.0.1:PORT/path [--deflate]
#
#   Runs cases 1.* .. 10.* (there is no section 8). With --deflate it also runs
#   12.* and 13.* (permessage-deflate), minus the 13.x groups listed in
#   AUTOBAHN_DEFLATE_EXCLUDE.
#
# env:
#   AUTOBAHN_REPORT_DIR       where reports go (default: a fresh mktemp -d);
#                             one sub-directory per section (s1, s2, ..., s13),
#                             each with kosoku's index.json, per-case JSON/HTML
#                             and kosoku.log
#   AUTOBAHN_TIMEOUT          total time budget in seconds (default 900)
#   AUTOBAHN_SECTION_TIMEOUT  cap per section in seconds (default 600)
#   AUTOBAHN_SECTIONS         override the section list, e.g. "1 2 9"
#   AUTOBAHN_DEFLATE_EXCLUDE  case globs left out with --deflate
#                             (default "13.2.* 13.5.* 13.6.* 13.7.*")
#   AUTOBAHN_PARALLELISM      cases kosoku runs at once (default 1)
#   KOSOKU_VERSION            kosoku version to install if missing (default 0.1.0)
#
# Output: one line per non-passing case, then exactly
#   autobahn: N passed, M failed
# Exit status is non-zero if any case failed or no case ran.
set -euo pipefail

usage() {
  echo "usage: $0 ws://HOST:PORT/path [--deflate]" >&2
  exit 2
}

url=""
deflate=0
for arg in "$@"; do
  case "$arg" in
    --deflate) deflate=1 ;;
    -h|--help) usage ;;
    ws://*|wss://*)
      [[ -z "$url" ]] || usage
      url="$arg"
      ;;
    *) echo "run.sh: unexpected argument: $arg" >&2; usage ;;
  esac
done
[[ -n "$url" ]] || usage

PY="${PYTHON:-python3}"
KOSOKU_VERSION="${KOSOKU_VERSION:-0.1.0}"
total_budget="${AUTOBAHN_TIMEOUT:-900}"
section_cap="${AUTOBAHN_SECTION_TIMEOUT:-600}"
parallelism="${AUTOBAHN_PARALLELISM:-1}"
deflate_exclude="${AUTOBAHN_DEFLATE_EXCLUDE:-13.2.* 13.5.* 13.6.* 13.7.*}"

# --- install kosoku if missing -------------------------------------------------
if ! "$PY" -c 'import kosoku' >/dev/null 2>&1; then
  echo "autobahn: installing kosoku==$KOSOKU_VERSION" >&2
  PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install --quiet --disable-pip-version-check \
    "kosoku==$KOSOKU_VERSION" >&2
fi

# --- sections to run ------------------------------------------------------------
if [[ -n "${AUTOBAHN_SECTIONS:-}" ]]; then
  read -r -a sections <<<"$AUTOBAHN_SECTIONS"
else
  sections=(1 2 3 4 5 6 7 9 10)
  if [[ "$deflate" == 1 ]]; then
    sections+=(12 13)
  fi
fi
read -r -a excludes <<<"$deflate_exclude"
if [[ "$deflate" != 1 ]]; then
  excludes=()
fi

report_dir="${AUTOBAHN_REPORT_DIR:-}"
if [[ -z "$report_dir" ]]; then
  report_dir="$(mktemp -d "${TMPDIR:-/tmp}/autobahn.XXXXXX")"
fi
mkdir -p "$report_dir"
report_dir="$(cd "$report_dir" && pwd)"

# kosoku has no __main__; call its console-script entry point through the same
# interpreter pip installed into (equivalent to the `kosoku` command).
kosoku_cmd=("$PY" -c 'import sys; sys.argv[0] = "kosoku"; from kosoku._cli import main; main()')

# --- run, one kosoku process per section ------------------------------------------
# kosoku writes reports only when its whole run ends, and it has no opening-
# handshake timeout (a server that accepts TCP but never answers the upgrade
# hangs it), so each section runs separately under its own `timeout`: a hang
# loses one section's results, not the whole run.
start=$SECONDS
for s in "${sections[@]}"; do
  out="$report_dir/s$s"
  mkdir -p "$out"
  rm -f "$out/index.json"
  remaining=$((total_budget - (SECONDS - start)))
  if ((remaining <= 0)); then
    echo "autobahn: section $s.* skipped: time budget of ${total_budget}s used up" >&2
    continue
  fi
  limit=$((remaining < section_cap ? remaining : section_cap))
  args=("$url" -i "$s.*" -o "$out" -p "$parallelism")
  for x in "${excludes[@]}"; do
    args+=(-x "$x")
  done
  t0=$SECONDS
  rc=0
  timeout --kill-after=10 "$limit" "${kosoku_cmd[@]}" "${args[@]}" >"$out/kosoku.log" 2>&1 || rc=$?
  note=""
  if ((rc == 124 || rc == 137)); then
    note=" TIMED OUT after ${limit}s"
  elif [[ ! -f "$out/index.json" ]]; then
    note=" produced no report (exit $rc)"
  fi
  echo "autobahn: section $s.* took $((SECONDS - t0))s$note" >&2
  if [[ -n "$note" ]]; then
    tail -n 5 "$out/kosoku.log" | sed 's/^/  kosoku: /' >&2 || true
  fi
done

# --- summarise -----------------------------------------------------------------------
echo "autobahn: reports in $report_dir (index.json per section directory)" >&2
rc=0
"$PY" - "$report_dir" "${#sections[@]}" "${sections[@]}" "${#excludes[@]}" "${excludes[@]}" <<'PYEOF' || rc=$?
import fnmatch
import json
import os
import sys

report_dir = sys.argv[1]
n = int(sys.argv[2])
sections = sys.argv[3:3 + n]
excludes = sys.argv[4 + n:]

PASS = {"OK", "NON-STRICT", "INFORMATIONAL"}

def passes(case_id, value):
    if value in PASS:
        return True
    # UNIMPLEMENTED is only a failure for the compression sections 12/13.
    return value == "UNIMPLEMENTED" and case_id.split(".")[0] not in ("12", "13")

def sort_key(case_id):
    return [int(p) if p.isdigit() else 0 for p in case_id.split(".")]

# The cases each section should have produced (to catch timeouts and crashes).
try:
    from kosoku.cases import CASES
    expected = {
        c for c in CASES
        if any(fnmatch.fnmatchcase(c, s + ".*") for s in sections)
        and not any(fnmatch.fnmatchcase(c, x) for x in excludes)
    }
except Exception:
    expected = set()

results = {}
for s in sections:
    d = os.path.join(report_dir, "s" + s)
    try:
        with open(os.path.join(d, "index.json")) as f:
            index = json.load(f)
    except (OSError, ValueError):
        continue
    for agent, cases in index.items():
        for case_id, entry in cases.items():
            results[case_id] = (d, entry)

passed = failed = 0
for case_id in sorted(set(results) | expected, key=sort_key):
    if case_id not in results:
        failed += 1
        print(f"FAIL {case_id}: no result (section timed out or kosoku crashed)")
        continue
    d, entry = results[case_id]
    behavior = entry.get("behavior")
    close = entry.get("behaviorClose", "OK")
    if passes(case_id, behavior) and passes(case_id, close):
        passed += 1
        continue
    failed += 1
    detail = ""
    try:
        with open(os.path.join(d, entry["reportfile"])) as f:
            case = json.load(f)
        detail = case.get("result") or ""
        if close not in PASS and case.get("resultClose") not in (None, "", detail):
            detail += " / " + case["resultClose"]
    except (OSError, ValueError, KeyError):
        pass
    print(
        f"FAIL {case_id}: behavior={behavior} close={close} "
        f"remoteCloseCode={entry.get('remoteCloseCode')} {detail}".rstrip()
    )

print(f"autobahn: {passed} passed, {failed} failed")
sys.exit(1 if failed or passed == 0 else 0)
PYEOF
exit "$rc"
