#!/usr/bin/env bash
# Benchmarks: bench/run.ts on a dedicated, fresh PostgreSQL cluster (own port and data
# directory, so it never touches the development or test databases), with the
# migrations applied by the Supabase CLI. Flags go to bench/run.ts, e.g.
#   npm run bench                              # 10k, 100k, 1M (the README table)
#   npm run bench -- --sizes 10000,100000 --skip-http
#   deno task bench --help
#   npm run bench -- --only-auth-latency       # only what our triggers cost Auth (bench/auth_latency.ts)
#   npm run bench -- --skip-auth-latency       # leave that out
#   npm run bench -- heal --sizes 1000000,10000000   # reconcile at scale (bench/heal.ts)
# Environment: USER_SYNC_BENCH_DB_PORT (54500), USER_SYNC_BENCH_KEEP=1 (leave the cluster
# running at the end; the next benchmark then refuses to start that folder afresh unless
# USER_SYNC_BENCH_REPLACE_KEPT=1), USER_SYNC_BENCH_PGDATA (default
# `scripts/db.sh datadir pg-bench`: .local/pg-bench, or outside a checkout the cluster's
# OS user cannot reach).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export USER_SYNC_DB_PORT="${USER_SYNC_BENCH_DB_PORT:-54500}"
DB="bash $ROOT/scripts/db.sh"
export USER_SYNC_PGDATA="${USER_SYNC_BENCH_PGDATA:-$($DB datadir pg-bench)}"
# Deno must not read package.json: it lists the npm-installed tools (deno, supabase), and
# Deno would fetch them again and warn about their install scripts. Imports live in deno.json.
export DENO_NO_PACKAGE_JSON=1

# --only-auth-latency / --skip-auth-latency are ours; the rest goes to bench/run.ts.
AUTH_LATENCY=1
RUN_MAIN=1
HEAL=0
ASKED="npm run bench -- $*" # for the mark of a kept cluster
if [ "${1:-}" = heal ]; then HEAL=1; shift; fi
args=()
for arg in "$@"; do
  if [ "$arg" = "--help" ] || [ "$arg" = "-h" ]; then
    exec "$ROOT/node_modules/.bin/deno" run --allow-all bench/run.ts --help
  elif [ "$arg" = "--only-auth-latency" ]; then RUN_MAIN=0
  elif [ "$arg" = "--skip-auth-latency" ]; then AUTH_LATENCY=0
  else args+=("$arg"); fi
done

$DB install
# The hook scenario drives HTTP load with wrk (Debian package).
if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "[bench] installing wrk" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1 ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
  else
    echo "[bench] wrk is missing (apt-get install wrk): the hook scenario will report it" >&2
  fi
fi

# A cluster kept by USER_SYNC_BENCH_KEEP=1 (a 10M heal takes half an hour to build) is not
# started afresh by the next benchmark unless asked: USER_SYNC_BENCH_REPLACE_KEPT=1.
KEPT_MARK="$USER_SYNC_PGDATA/KEPT_BY_BENCH"
if [ -f "$KEPT_MARK" ] && [ "${USER_SYNC_BENCH_REPLACE_KEPT:-0}" != 1 ]; then
  echo "[bench] $USER_SYNC_PGDATA holds a cluster kept by USER_SYNC_BENCH_KEEP=1 ($(cat "$KEPT_MARK")):" >&2
  echo "[bench] set USER_SYNC_BENCH_PGDATA to another folder, or USER_SYNC_BENCH_REPLACE_KEPT=1 to replace it" >&2
  exit 1
fi
$DB stop >/dev/null 2>&1 || true
if (exec 3<>/dev/tcp/127.0.0.1/"$USER_SYNC_DB_PORT") 2>/dev/null; then
  echo "[bench] port $USER_SYNC_DB_PORT is taken by another server; set USER_SYNC_BENCH_DB_PORT" >&2
  exit 1
fi
$DB start --fresh
# USER_SYNC_BENCH_KEEP=1 leaves the cluster running afterwards (EXPLAIN on the generated
# data; stop it with USER_SYNC_DB_PORT=... USER_SYNC_PGDATA=... scripts/db.sh stop).
if [ "${USER_SYNC_BENCH_KEEP:-0}" = 1 ]; then
  echo "$ASKED, port $USER_SYNC_DB_PORT, $(date -u +%FT%TZ)" > "$KEPT_MARK"
else
  trap '$DB stop || true' EXIT
fi
$DB push >/dev/null

if [ "$HEAL" = 1 ]; then
  "$ROOT/node_modules/.bin/deno" run --allow-all bench/heal.ts --db-port "$USER_SYNC_DB_PORT" "${args[@]}"
  exit
fi
if [ "$RUN_MAIN" = 1 ]; then
  "$ROOT/node_modules/.bin/deno" run --allow-all bench/run.ts --db-port "$USER_SYNC_DB_PORT" "${args[@]}"
fi
# What our triggers cost Auth (pgbench, Debian's postgresql-15 has it), on a fresh cluster of its own.
if [ "$AUTH_LATENCY" = 1 ]; then
  if [ "$RUN_MAIN" = 1 ]; then
    $DB stop >/dev/null
    $DB start --fresh
    [ "${USER_SYNC_BENCH_KEEP:-0}" != 1 ] || echo "$ASKED, port $USER_SYNC_DB_PORT, $(date -u +%FT%TZ)" > "$KEPT_MARK"
    $DB push >/dev/null
  fi
  "$ROOT/node_modules/.bin/deno" run --allow-all bench/auth_latency.ts --db-port "$USER_SYNC_DB_PORT"
fi
