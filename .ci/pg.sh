#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster on 127.0.0.1 for the durable-store tests.
# Usage: source .ci/pg.sh  (exports TASKRUNNER_PG_URL and PG_TMPDIR; call pg_stop to stop)
# Installs Debian's `postgresql` if it is missing. Runs the server as the non-root `postgres`.
set -euo pipefail

pg_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  return 1
}

if ! PG_BIN="$(pg_bindir)"; then
  echo "== installing postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
  PG_BIN="$(pg_bindir)"
fi

if ! id postgres >/dev/null 2>&1; then
  useradd -r -m postgres
fi

PG_PORT="${PG_PORT:-54329}"
PG_TMPDIR="$(mktemp -d /tmp/taskrunner-pg.XXXXXX)"
chown postgres "$PG_TMPDIR"
runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_TMPDIR/data" -U postgres -A trust --no-sync >/dev/null
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_TMPDIR/data" -l "$PG_TMPDIR/log" -w -o \
  "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$PG_TMPDIR -c max_connections=200" start >/dev/null
export PG_TMPDIR PG_BIN
export TASKRUNNER_PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
echo "== postgresql up at $TASKRUNNER_PG_URL"

pg_stop() {
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_TMPDIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_TMPDIR"
}
