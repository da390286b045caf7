#!/usr/bin/env bash
# Proves that supabase/schemas/*.sql (the readable, current definition of every object)
# and supabase/migrations/*.sql (what `supabase db push` applies) build the same database.
#
#   1. a fresh cluster + platform files; supabase/schemas/*.sql applied in name order as
#      postgres (what `supabase db diff` would compare against, without Docker);
#   2. a fresh cluster + platform files; the migrations applied by the Supabase CLI;
#   3. `pg_dump --schema-only` of both, plus what a schema dump leaves out but we own
#      (the cron job, the seeded roles and config rows), must be byte-identical.
#
# Usage: bash scripts/schema-check.sh [--keep]   (dumps kept under .local/schema-check)
# Environment: USER_SYNC_CHECK_DB_PORT (54340).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source "$ROOT/scripts/lib/dump.sh"

export USER_SYNC_DB_PORT="${USER_SYNC_CHECK_DB_PORT:-54340}"
export USER_SYNC_PGDATA="$(bash "$ROOT/scripts/db.sh" datadir pg-schema-check)"
OUT="$ROOT/.local/schema-check"
DB="bash $ROOT/scripts/db.sh"
mkdir -p "$OUT"
trap '$DB stop >/dev/null 2>&1 || true' EXIT

echo "[schema-check] database from supabase/schemas/*.sql"
$DB start --fresh >/dev/null 2>&1
for f in "$ROOT"/supabase/schemas/*.sql; do
  PGPASSWORD=postgres psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$USER_SYNC_DB_PORT" \
    -U postgres -d postgres -f "$f" >/dev/null 2>"$OUT/schemas.err" ||
    { echo "[schema-check] $f failed:" >&2; cat "$OUT/schemas.err" >&2; exit 1; }
done
dump_schema "$USER_SYNC_DB_PORT" > "$OUT/from-schemas.sql"

echo "[schema-check] database from supabase/migrations (supabase db push)"
$DB start --fresh >/dev/null 2>&1
$DB push >/dev/null 2>"$OUT/push.err" || { cat "$OUT/push.err" >&2; exit 1; }
dump_schema "$USER_SYNC_DB_PORT" > "$OUT/from-migrations.sql"
$DB stop >/dev/null 2>&1

if diff -u "$OUT/from-migrations.sql" "$OUT/from-schemas.sql" > "$OUT/diff.txt"; then
  echo "[schema-check] ok: supabase/schemas and supabase/migrations build the same schema ($(wc -l < "$OUT/from-schemas.sql") lines of dump)"
else
  echo "[schema-check] FAILED: supabase/schemas differs from supabase/migrations (- migrations, + schemas):" >&2
  head -200 "$OUT/diff.txt" >&2
  exit 1
fi
