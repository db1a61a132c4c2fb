#!/usr/bin/env bash
# Prints the path of the test suites' Python interpreter: a virtual environment under
# target/venv with every package of tests/requirements.txt, made or updated when missing.
#
#   PY=$(scripts/venv.sh)
#
# Test suites never install into the system interpreter (Debian's refuses it anyway, PEP 668).
# The venv is rebuilt only when tests/requirements.txt changes (its hash is kept beside it).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/venv
requirements=tests/requirements.txt
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$requirements" | cut -d' ' -f1)

if [[ ! -x "$venv/bin/python" ]]; then
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    echo "venv: installing Debian's python3-venv" >&2
    apt-get update -qq >&2 && apt-get install -y -qq python3-venv >&2
  fi
  python3 -m venv "$venv" >&2
fi
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "venv: installing $requirements into $venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
  echo "$want" >"$stamp"
fi
echo "$PWD/$venv/bin/python"
