#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL cluster on 127.0.0.1:
#   bash tests/tools/with_postgres.sh .venv/bin/pytest
# Installs PostgreSQL from Debian's packages if missing (as root), starts a cluster in a temp
# folder on a free port, exports TEST_DATABASE_URL, runs the command, then stops and removes it.
set -euo pipefail

find_pg_bin() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  return 1
}

PG_BIN=$(find_pg_bin || true)
if [ -z "$PG_BIN" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing PostgreSQL from Debian's packages (once)..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
    PG_BIN=$(find_pg_bin)
  else
    echo "PostgreSQL is not installed: sudo apt-get install postgresql" >&2
    exit 1
  fi
fi

WORK=$(mktemp -d /tmp/chendu-pg.XXXXXX)
# initdb refuses to run as root: run the cluster as the postgres user then.
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir "$WORK" --shell /bin/false postgres
  chown postgres "$WORK"
  AS_PG=(runuser -u postgres --)
else
  AS_PG=()
fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

stop() {
  "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap stop EXIT

"${AS_PG[@]}" "$PG_BIN/initdb" -D "$WORK/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
  --no-sync >/dev/null
"${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$WORK/data" -l "$WORK/log" -w \
  -o "-h 127.0.0.1 -p $PORT -k $WORK -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
  start >/dev/null
"$PG_BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres chendu_test

export TEST_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:$PORT/chendu_test"
echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT"
"$@"
