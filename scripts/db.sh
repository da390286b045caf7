#!/usr/bin/env bash
# Local Supabase-like PostgreSQL 15 for tests, benchmarks and `npm start`.
#
#   scripts/db.sh install        apt + npm dependencies (idempotent; apt only as root)
#   scripts/db.sh start [--fresh] throwaway cluster on 127.0.0.1:54322 with the
#                                 platform files (platform/sql) applied once
#   scripts/db.sh push [--workdir DIR]  apply supabase/migrations (of DIR/supabase, default
#                                 this checkout) with the real Supabase CLI
#   scripts/db.sh lint           supabase db lint + supabase db advisors, fail on warning
#   scripts/db.sh stop           stop the cluster (data kept unless started --fresh)
#   scripts/db.sh crash          stop it the hard way (pg_ctl -m immediate: no checkpoint, every
#                                 connection cut, as a crash); `start` then runs crash recovery
#   scripts/db.sh psql [...]     psql as supabase_admin (superuser)
#   scripts/db.sh datadir NAME   where a cluster called NAME keeps its data (see data_dir)
#
# Environment: USER_SYNC_PGDATA (default `datadir pgdata`), USER_SYNC_DB_PORT (54322).
# Nothing the cluster's OS user reads or writes lives in the checkout unless that user
# can reach it: data directory and server.log (data_dir), socket (/tmp), initdb's
# password file (mktemp), the extension stand-ins (copied to the system's extension
# directory by the invoking user).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
PORT="${USER_SYNC_DB_PORT:-54322}"
# Where a cluster's data lives: .local/<name> in the checkout, unless the cluster's OS
# user (postgres, when run as root) cannot reach the checkout (a clone in a private
# home, mode 700): then /var/lib/user-sync/<checkout id>/<name>. `db.sh datadir NAME`.
data_dir() {
  local name="$1"
  if [ "$(id -u)" != 0 ] || runuser -u postgres -- test -x "$ROOT" -a -w "$ROOT/.local" 2>/dev/null ||
     { mkdir -p "$ROOT/.local" && runuser -u postgres -- test -x "$ROOT/.local" 2>/dev/null; }; then
    echo "$ROOT/.local/$name"
  else
    echo "/var/lib/user-sync/$(printf '%s' "$ROOT" | md5sum | cut -c1-12)/$name"
  fi
}
PGDATA="${USER_SYNC_PGDATA:-$(data_dir pgdata)}"
case "$PGDATA" in /*) ;; *) PGDATA="$PWD/$PGDATA" ;; esac
SOCKDIR="${USER_SYNC_SOCKDIR:-/tmp}"
PASSWORD=postgres
DB_URL="postgresql://postgres:${PASSWORD}@127.0.0.1:${PORT}/postgres"
# The Supabase CLI insists on TLS for any address but 127.0.0.1:54322.
CLI_DB_URL="$DB_URL"; [ "$PORT" = 54322 ] || CLI_DB_URL="$DB_URL?sslmode=disable"
ADMIN_URL="postgresql://supabase_admin:${PASSWORD}@127.0.0.1:${PORT}/postgres"
SUPABASE="$ROOT/node_modules/.bin/supabase"
EXT_DIR="/usr/share/postgresql/15/extension"

log() { printf '[db] %s\n' "$*" >&2; }

# Run a command as the OS user that owns the cluster (postgres refuses root), from /
# (the checkout may be a directory that user cannot enter).
as_owner() {
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

cmd_install() {
  local need=()
  [ -x "$PGBIN/postgres" ] || need+=(postgresql-15)
  [ -f "$EXT_DIR/pg_cron.control" ] || need+=(postgresql-15-cron)
  [ -f "$EXT_DIR/pgtap.control" ] || need+=(postgresql-15-pgtap)
  [ -f "$EXT_DIR/plpgsql_check.control" ] || need+=(postgresql-15-plpgsql-check)
  command -v pg_prove >/dev/null || need+=(libtap-parser-sourcehandler-pgtap-perl)
  if [ "${#need[@]}" -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
      log "missing Debian packages: ${need[*]} (run this as root or apt-get install them)"; exit 1
    fi
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  # Test-only stand-ins for pg_net and supabase_vault, installed as extensions so the
  # migration's `create extension if not exists pg_net` behaves as on the platform.
  local f
  for f in "$ROOT"/platform/extensions/*; do
    if ! cmp -s "$f" "$EXT_DIR/$(basename "$f")"; then
      if [ -w "$EXT_DIR" ]; then cp "$f" "$EXT_DIR/"; else
        log "cannot write $EXT_DIR: copy platform/extensions/* there as root"; exit 1
      fi
    fi
  done
  # npm packages: missing, or older than package-lock.json (a pull changed them).
  if [ ! -x "$SUPABASE" ] || [ ! -x "$ROOT/node_modules/.bin/deno" ] ||
     [ ! -f "$ROOT/node_modules/.package-lock.json" ] ||
     [ "$ROOT/package-lock.json" -nt "$ROOT/node_modules/.package-lock.json" ]; then
    log "installing npm packages (deno, supabase CLI, the client and dashboard workspaces)"
    (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

is_running() { as_owner "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }

cmd_start() {
  local fresh=0
  [ "${1:-}" = "--fresh" ] && fresh=1
  if [ "$fresh" = 1 ] && [ -d "$PGDATA" ]; then
    is_running && as_owner "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate stop >/dev/null
    rm -rf "$PGDATA"
  fi
  local init=0
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    init=1
    mkdir -p "$PGDATA"
    if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"; fi
    local pwfile; pwfile="$(mktemp)"; echo "$PASSWORD" > "$pwfile"; chmod 644 "$pwfile"
    # supabase_admin is the bootstrap superuser, as on the platform.
    as_owner "$PGBIN/initdb" -D "$PGDATA" -U supabase_admin --pwfile="$pwfile" \
      --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"
    cat >> "$PGDATA/postgresql.conf" <<EOF
# ---- user-sync local platform ----
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCKDIR'
max_connections = 200
shared_preload_libraries = 'pg_cron,pg_stat_statements'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 32
timezone = 'UTC'
log_timezone = 'UTC'
shared_buffers = '1GB'
work_mem = '32MB'
maintenance_work_mem = '256MB'
max_wal_size = '4GB'
logging_collector = off
log_min_messages = warning
EOF
  fi
  if ! is_running; then
    as_owner "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w -t 60 start >/dev/null
  fi
  if [ "$init" = 1 ]; then
    log "applying platform files (platform/sql)"
    local f
    for f in "$ROOT"/platform/sql/*.sql; do
      psql_admin -q -v ON_ERROR_STOP=1 -f "$f" >/dev/null
    done
  fi
  log "database up: $DB_URL"
}

psql_admin() { PGPASSWORD="$PASSWORD" psql -X -h 127.0.0.1 -p "$PORT" -U supabase_admin -d postgres "$@"; }

cmd_push() {
  local workdir="$ROOT"
  if [ "${1:-}" = "--workdir" ]; then workdir="$(cd "${2:?usage: $0 push [--workdir DIR]}" && pwd)"; fi
  (cd "$workdir" && "$SUPABASE" db push --workdir "$workdir" --db-url "$CLI_DB_URL" --include-all --yes)
}

cmd_lint() {
  (cd "$ROOT" && "$SUPABASE" db lint --db-url "$CLI_DB_URL" --schema public,user_sync --level warning --fail-on warning)
  (cd "$ROOT" && "$SUPABASE" db advisors --db-url "$CLI_DB_URL" --type all --level warn --fail-on warn)
}

cmd_stop() {
  if [ -f "$PGDATA/PG_VERSION" ] && is_running; then
    as_owner "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
    log "database stopped"
  fi
}

cmd_crash() {
  if [ -f "$PGDATA/PG_VERSION" ] && is_running; then
    as_owner "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null
    log "database crashed (immediate stop)"
  fi
}

case "${1:-}" in
  install) cmd_install ;;
  start) shift; cmd_start "$@" ;;
  push) shift; cmd_push "$@" ;;
  lint) cmd_lint ;;
  stop) cmd_stop ;;
  crash) cmd_crash ;;
  psql) shift; psql_admin "$@" ;;
  url) echo "$DB_URL" ;;
  datadir) data_dir "${2:?usage: $0 datadir NAME}" ;;
  *) echo "usage: $0 install|start [--fresh]|push [--workdir DIR]|lint|stop|crash|psql|url|datadir NAME" >&2; exit 2 ;;
esac
