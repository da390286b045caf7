#!/usr/bin/env bash
# Benchmarks: bench/run.ts on a dedicated, fresh PostgreSQL cluster (own port and data
# directory, so it never touches the development or test databases), with the
# migrations applied by the Supabase CLI. Flags go to bench/run.ts, e.g.
#   npm run bench                              # 10k, 100k, 1M (the README table)
#   npm run bench -- --sizes 10000,100000 --skip-http
#   deno task bench --help
#   npm run bench -- heal --sizes 1000000,10000000   # reconcile at scale (bench/heal.ts)
# Environment: USER_SYNC_BENCH_DB_PORT (54500), USER_SYNC_BENCH_PGDATA (.local/pg-bench).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export USER_SYNC_DB_PORT="${USER_SYNC_BENCH_DB_PORT:-54500}"
export USER_SYNC_PGDATA="${USER_SYNC_BENCH_PGDATA:-$ROOT/.local/pg-bench}"
DB="bash $ROOT/scripts/db.sh"

for arg in "$@"; do
  if [ "$arg" = "--help" ] || [ "$arg" = "-h" ]; then
    exec "$ROOT/node_modules/.bin/deno" run --allow-all bench/run.ts --help
  fi
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

$DB stop >/dev/null 2>&1 || true
if (exec 3<>/dev/tcp/127.0.0.1/"$USER_SYNC_DB_PORT") 2>/dev/null; then
  echo "[bench] port $USER_SYNC_DB_PORT is taken by another server; set USER_SYNC_BENCH_DB_PORT" >&2
  exit 1
fi
$DB start --fresh
trap '$DB stop || true' EXIT
$DB push >/dev/null

if [ "${1:-}" = heal ]; then
  shift
  "$ROOT/node_modules/.bin/deno" run --allow-all bench/heal.ts --db-port "$USER_SYNC_DB_PORT" "$@"
else
  "$ROOT/node_modules/.bin/deno" run --allow-all bench/run.ts --db-port "$USER_SYNC_DB_PORT" "$@"
fi
