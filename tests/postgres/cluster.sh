#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for livehub's tests: initdb into a folder under target/, its own
# socket directory, a free loopback port, trust authentication for the superuser `livehub`.
#
#   tests/postgres/cluster.sh start [DIR] [--until-exit-of PID]
#       installs Debian's `postgresql` when missing, creates and starts the cluster in DIR
#       (default target/postgres/cluster), and prints its DATABASE_URL. Starting a running
#       cluster prints its URL again. With --until-exit-of, the cluster is stopped and removed
#       once process PID has exited (how the Rust tests clean up after themselves).
#   tests/postgres/cluster.sh stop [DIR]     stops the cluster and removes DIR
#   tests/postgres/cluster.sh down [DIR]     stops the server, keeping its data (an outage)
#   tests/postgres/cluster.sh up [DIR]       starts it again on the same port
#   tests/postgres/cluster.sh url [DIR]      prints the DATABASE_URL
#
# PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user that
# Debian's package creates. Only 127.0.0.1 and the socket directory are listened on.
set -euo pipefail

cmd=${1:-}
shift || true
dir=target/postgres/cluster
owner=
while (($#)); do
  case "$1" in
    --until-exit-of) owner=$2; shift 2 ;;
    *) dir=$1; shift ;;
  esac
done
[[ -n "$cmd" ]] || { sed -n '2,16p' "$0" >&2; exit 2; }

pg_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [[ -z "$bin" || ! -x "$bin/initdb" ]]; then
    if [[ $(id -u) != 0 ]]; then
      echo "cluster.sh: PostgreSQL is not installed; run 'apt-get install postgresql' as root" >&2
      exit 1
    fi
    echo "cluster.sh: installing Debian's postgresql" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  echo "$bin"
}

# Runs a PostgreSQL program as the cluster's owner.
as_owner() {
  if [[ $(id -u) == 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

url() { echo "postgres://livehub@127.0.0.1:$(cat "$dir/port")/livehub"; }

running() { [[ -f "$dir/port" ]] && as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; }

server_start() {
  local port
  port=$(cat "$dir/port")
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start -o \
    "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir/sock \
     -c max_connections=200 -c shared_buffers=64MB" >/dev/null
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case "$cmd" in
  start)
    bin=$(pg_bin)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if running; then
      url
      exit 0
    fi
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
      rm -rf "$dir/data" "$dir/sock"
      mkdir -p "$dir/data" "$dir/sock"
      [[ $(id -u) == 0 ]] && chown -R postgres:postgres "$dir"
      as_owner "$bin/initdb" -D "$dir/data" -U livehub --auth=trust --no-locale -E UTF8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
      # A free port can be taken between choosing it and listening on it: choose again.
      for attempt in 1 2 3; do
        free_port >"$dir/port"
        server_start && break
        [[ $attempt == 3 ]] && { cat "$dir/server.log" >&2; exit 1; }
      done
      as_owner "$bin/createdb" -h 127.0.0.1 -p "$(cat "$dir/port")" -U livehub livehub
    else
      server_start
    fi
    if [[ -n "$owner" ]]; then
      # Detached, with no inherited output, so that whoever reads this script's output is not
      # kept waiting for the watcher.
      setsid bash -c '
        while kill -0 "$1" 2>/dev/null; do sleep 1; done
        "$2" stop "$3"' watcher "$owner" "$(cd "$(dirname "$0")" && pwd)/$(basename "$0")" "$dir" \
        </dev/null >/dev/null 2>&1 &
    fi
    url
    ;;
  stop)
    bin=$(pg_bin)
    if [[ -d "$dir" ]]; then
      running && as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
      rm -rf "$dir"
    fi
    ;;
  down)
    bin=$(pg_bin)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
  up)
    bin=$(pg_bin)
    dir=$(cd "$dir" && pwd)
    server_start
    ;;
  url)
    url
    ;;
  *)
    echo "cluster.sh: unknown command $cmd (start, stop, down, up, url)" >&2
    exit 2
    ;;
esac
