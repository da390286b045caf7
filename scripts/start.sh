#!/usr/bin/env bash
# npm start / deno task start: the whole system locally.
#   installs what is missing, starts the database (data kept across restarts in
#   `bash scripts/db.sh datadir pgdata`; --fresh starts from scratch), applies the
#   migrations with the Supabase CLI, then runs the gateway (functions + Auth stand-in)
#   on :54321 and the pg_net sender, with a live status line. Ctrl-C stops every process it started, the database too.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DB="bash $ROOT/scripts/db.sh"
# Deno must not read package.json: it lists the npm-installed tools (deno, supabase), and
# Deno would fetch them again and warn about their install scripts. Imports live in deno.json.
export DENO_NO_PACKAGE_JSON=1

fresh=""
for arg in "$@"; do
  case "$arg" in
    --fresh) fresh="--fresh" ;;
    *) echo "usage: npm start [-- --fresh]" >&2; exit 2 ;;
  esac
done

$DB install
$DB start $fresh
stopped=0
stop_db() { [ "$stopped" = 1 ] || { stopped=1; $DB stop || true; }; }
trap stop_db EXIT
trap 'exit 130' INT TERM
$DB push >/dev/null
npm run --silent build:dashboard >"$ROOT/.local/dashboard-build.log" 2>&1 ||
  echo "dashboard build failed (see .local/dashboard-build.log); the API runs without it" >&2
"$ROOT/node_modules/.bin/deno" run --allow-all platform/stack.ts &
child=$!
# Ctrl-C reaches the whole foreground process group (Deno included); wait for Deno
# to shut down cleanly, then stop the database.
trap 'kill -TERM "$child" 2>/dev/null || true' INT TERM
wait "$child" || true
wait "$child" 2>/dev/null || true
