#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts a throwaway Supabase-like
# database on 127.0.0.1:54322, applies the migrations with the Supabase CLI, lints,
# checks supabase/schemas against the migrations, upgrades a v0.1.0 install with data
# (tests/upgrade), starts a clone in a private home (tests/anywhere), runs the pgTAP
# suite (pg_prove) and the Deno suites, stops the database.
# Exits non-zero on any failure. Usage: npm test  (or bash scripts/test.sh)
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DB="bash $ROOT/scripts/db.sh"
# Cluster data: .local/test-pgdata, or outside the checkout when the cluster's OS user
# cannot reach it (see scripts/db.sh datadir).
export USER_SYNC_PGDATA="${USER_SYNC_TEST_PGDATA:-$($DB datadir test-pgdata)}"
# Deno must not read package.json: it lists the npm-installed tools (deno, supabase), and
# Deno would fetch them again and warn about their install scripts. Imports live in deno.json.
export DENO_NO_PACKAGE_JSON=1
export USER_SYNC_DB_PORT="${USER_SYNC_DB_PORT:-54322}"
PORT="$USER_SYNC_DB_PORT"

passed=0
failed=0
LOGDIR="$(mktemp -d)"
# Every log line the Deno tests capture instead of printing, for the final scan.
export USER_SYNC_TEST_LOG="$LOGDIR/captured.txt"
step() {
  local name="$1"; shift
  local log="$LOGDIR/$(echo "$name" | tr -c 'a-zA-Z0-9' _).log"
  printf '\n==> %s\n' "$name"
  if "$@" 2>&1 | tee "$log"; then passed=$((passed + 1)); printf '<== %s: ok\n' "$name"
  else failed=$((failed + 1)); printf '<== %s: FAILED\n' "$name"; fi
}

cleanup() { $DB stop || true; }
trap cleanup EXIT

$DB install || exit 1
$DB stop >/dev/null 2>&1 || true
if (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then
  echo "port $PORT is taken by another server: stop it (npm start uses it too) and retry" >&2
  exit 1
fi
$DB start --fresh || exit 1
step "migrations (supabase db push)" $DB push || true
step "lint (supabase db lint + db advisors)" $DB lint
step "lint (deno lint: TypeScript and JavaScript)" "$ROOT/node_modules/.bin/deno" lint
step "schema: supabase/schemas builds what supabase/migrations build" bash "$ROOT/scripts/schema-check.sh"
# Each on its own cluster and port (USER_SYNC_UPGRADE_DB_PORT, USER_SYNC_ANYWHERE_DB_PORT).
step "upgrade: v0.1.0, 0.2.0, 0.3.0 and 0.4.0 with live data, then today's migrations (supabase db push)" \
  "$ROOT/node_modules/.bin/deno" test --allow-all --no-check=remote tests/upgrade/
step "any folder: a clone in a private home (mode 700) starts, migrates, passes pgTAP" \
  "$ROOT/node_modules/.bin/deno" test --allow-all --no-check=remote tests/anywhere/

export PGPASSWORD=postgres
step "pgTAP suite (pg_prove)" pg_prove --ext .sql -h 127.0.0.1 -p "$PORT" -U supabase_admin -d postgres supabase/tests/

if compgen -G "tests/*.test.ts" >/dev/null || compgen -G "tests/**/*.test.ts" >/dev/null; then
  step "Deno suites" "$ROOT/node_modules/.bin/deno" task test:deno
  step "dashboard in a real browser (Chromium)" bash "$ROOT/scripts/test-dashboard.sh"
  # The logs of the whole run (every step's output, captured lines, the server log,
  # the logs kept in the database) must not contain a single configured secret.
  step "secrets in the logs of the whole run" "$ROOT/node_modules/.bin/deno" run -A \
    tests/reliability/log-scan.ts "$LOGDIR"
fi

# @user-sync/client compiles for npm consumers (its Deno tests ran with the suites above).
step "client package: tsc (what npm consumers compile)" \
  "$ROOT/node_modules/.bin/tsc" -p "$ROOT/client/tsconfig.json" --noEmit

$DB stop >/dev/null 2>&1 || true
trap - EXIT
# One closing line with the test counts of every runner (pg_prove + deno test); a step
# that failed without counting anything (push, lint) counts as one failed test.
counts="$(cat "$LOGDIR"/*.log 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' | awk '
  /^Files=[0-9]+, Tests=[0-9]+/ { match($0, /Tests=[0-9]+/); t = substr($0, RSTART + 6, RLENGTH - 6); tp += t }
  /^Failed [0-9]+\/[0-9]+ subtests/ { split($2, a, "/"); tf += a[1] }
  /^# (pass|fail) [0-9]+$/ { if ($2 == "pass") dp += $3; else df += $3 }
  /^(ok|FAILED) \| [0-9]+ passed/ { for (i = 1; i <= NF; i++) { if ($(i + 1) ~ /^passed/) dp += $i; if ($(i + 1) ~ /^failed/) df += $i } }
  END { printf "%d %d", tp - tf + dp, tf + df }')"
read -r tests_passed tests_failed <<<"$counts"
if [ "$failed" -gt 0 ] && [ "$tests_failed" = 0 ]; then tests_failed="$failed"; fi
rm -rf "$LOGDIR"
printf '\nsteps: %d ok, %d failed\n' "$passed" "$failed"
printf 'tests: %d passed, %d failed\n' "$tests_passed" "$tests_failed"
[ "$failed" = 0 ]
