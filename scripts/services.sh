#!/usr/bin/env bash
# The team's tracking services: PostgreSQL (Debian's `postgresql` package) and `mlflow server`
# with its backend store on PostgreSQL and artifacts served from a local root.
#
#   scripts/services.sh start    install PostgreSQL if missing, start both (idempotent)
#   scripts/services.sh stop     stop both (data is kept)
#   scripts/services.sh status   say what runs, exit 1 when something is down
#   scripts/services.sh env      print the exports that point a shell at them
#
# Everything lives under $HOMEVISION_SERVICES_DIR (default .services/, ignored by git):
#   pg/ (the cluster), mlartifacts/ (the artifact root), *.log, mlflow.pid.
# Both bind to 127.0.0.1 only. The cluster trusts local TCP connections (a single-user
# development cluster); put a shared deployment behind a password and TLS.
# With HOMEVISION_DATABASE_URL set (e.g. a CI service container), that database is used and no
# cluster is started here.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${HOMEVISION_SERVICES_DIR:-$ROOT/.services}"
PG_PORT="${HOMEVISION_PG_PORT:-5433}"
MLFLOW_PORT="${HOMEVISION_MLFLOW_PORT:-5000}"
PG_USER=homevision
MLFLOW="${MLFLOW_BIN:-$ROOT/.venv/bin/mlflow}"
PGDATA="$DIR/pg"
PG_BIN=""

log() { echo "services: $*" >&2; }

database_url() { # database_url NAME -> the SQLAlchemy URL of database NAME
  if [[ -n "${HOMEVISION_DATABASE_URL:-}" ]]; then
    echo "${HOMEVISION_DATABASE_URL%/*}/$1"
  else
    echo "postgresql://$PG_USER@127.0.0.1:$PG_PORT/$1"
  fi
}

find_pg_bin() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [[ -z "$dir" ]]; then
    log "installing PostgreSQL (Debian package postgresql)"
    local sudo=""
    [[ "$(id -u)" != 0 ]] && sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
    dir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  fi
  PG_BIN="$dir"
}

as_pg() { # run a PostgreSQL binary as the cluster owner (postgres when we are root)
  if [[ "$(id -u)" == 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_running() { [[ -f "$PGDATA/postmaster.pid" ]] && as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }

start_pg() {
  find_pg_bin
  mkdir -p "$DIR"
  if [[ "$(id -u)" == 0 ]]; then
    # The cluster belongs to postgres, which must be able to reach it.
    chown postgres:postgres "$DIR"
    local d="$DIR"
    while [[ "$d" != / ]]; do
      runuser -u postgres -- test -x "$d" || chmod o+x "$d"
      d="$(dirname "$d")"
    done
  fi
  if [[ ! -f "$PGDATA/PG_VERSION" ]]; then
    log "creating the PostgreSQL cluster in $PGDATA"
    as_pg "$PG_BIN/initdb" -D "$PGDATA" -U "$PG_USER" --auth=trust -E UTF8 >"$DIR/initdb.log"
  fi
  if pg_running; then
    log "PostgreSQL already runs on 127.0.0.1:$PG_PORT"
  else
    as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$DIR/postgres.log" -w -t 60 \
      -o "-h 127.0.0.1 -p $PG_PORT -k ''" start >/dev/null
    log "PostgreSQL started on 127.0.0.1:$PG_PORT"
  fi
  local db
  for db in mlflow optuna; do
    if ! as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
      as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" "$db"
    fi
  done
}

ensure_external_dbs() { # with HOMEVISION_DATABASE_URL: create the two databases if missing
  "$ROOT/.venv/bin/python" - "$HOMEVISION_DATABASE_URL" <<'EOF'
import sys
import psycopg

with psycopg.connect(sys.argv[1], autocommit=True) as conn, conn.cursor() as cur:
    for name in ("mlflow", "optuna"):
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cur.fetchone() is None:
            cur.execute(f'CREATE DATABASE "{name}"')
EOF
}

mlflow_up() { # the server answers /health (Python's urllib: no curl needed)
  "$ROOT/.venv/bin/python" -c "import sys, urllib.request as u
try: sys.exit(u.urlopen('http://127.0.0.1:$MLFLOW_PORT/health', timeout=3).status != 200)
except OSError: sys.exit(1)" 2>/dev/null
}

start_mlflow() {
  if mlflow_up; then
    log "MLflow server already answers on http://127.0.0.1:$MLFLOW_PORT"
    return
  fi
  local backend
  backend="$(database_url mlflow)"
  mkdir -p "$DIR/mlartifacts"
  "$MLFLOW" db upgrade "$backend" >"$DIR/mlflow-db-upgrade.log" 2>&1
  nohup "$MLFLOW" server --backend-store-uri "$backend" \
    --artifacts-destination "$DIR/mlartifacts" \
    --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1 >"$DIR/mlflow.log" 2>&1 &
  echo $! >"$DIR/mlflow.pid"
  local i
  for i in $(seq 1 120); do
    if mlflow_up; then
      log "MLflow server started on http://127.0.0.1:$MLFLOW_PORT (log: $DIR/mlflow.log)"
      return
    fi
    if ! kill -0 "$(cat "$DIR/mlflow.pid")" 2>/dev/null; then
      log "MLflow server exited; its log:"
      tail -n 30 "$DIR/mlflow.log" >&2
      exit 1
    fi
    sleep 0.5
  done
  log "MLflow server did not answer within 60 s (log: $DIR/mlflow.log)"
  exit 1
}

stop_mlflow() {
  if [[ -f "$DIR/mlflow.pid" ]]; then
    local pid
    pid="$(cat "$DIR/mlflow.pid")"
    if kill -0 "$pid" 2>/dev/null; then
      # mlflow server runs uvicorn as a child: stop the whole group it leads.
      pkill -TERM -P "$pid" 2>/dev/null || true
      kill -TERM "$pid" 2>/dev/null || true
      local i
      for i in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -KILL "$pid" 2>/dev/null || true
      log "MLflow server stopped"
    fi
    rm -f "$DIR/mlflow.pid"
  fi
}

stop_pg() {
  [[ -n "${HOMEVISION_DATABASE_URL:-}" ]] && return
  [[ -f "$PGDATA/PG_VERSION" ]] || return 0
  find_pg_bin
  if pg_running; then
    as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
    log "PostgreSQL stopped"
  fi
}

print_env() {
  echo "export MLFLOW_TRACKING_URI=http://127.0.0.1:$MLFLOW_PORT"
  echo "export HOMEVISION_OPTUNA_STORAGE=$(database_url optuna)"
}

case "${1:-}" in
  start)
    if [[ -n "${HOMEVISION_DATABASE_URL:-}" ]]; then
      ensure_external_dbs
    else
      start_pg
    fi
    start_mlflow
    print_env
    ;;
  stop)
    stop_mlflow
    stop_pg
    ;;
  status)
    down=0
    if [[ -z "${HOMEVISION_DATABASE_URL:-}" ]]; then
      find_pg_bin
      if pg_running; then echo "PostgreSQL: up (127.0.0.1:$PG_PORT)"; else echo "PostgreSQL: down"; down=1; fi
    fi
    if mlflow_up; then echo "MLflow server: up (http://127.0.0.1:$MLFLOW_PORT)"; else echo "MLflow server: down"; down=1; fi
    exit "$down"
    ;;
  env) print_env ;;
  *)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac
