#!/usr/bin/env bash
# The client's row types (client/src/database.types.ts) from the real generator behind
# `supabase gen types typescript`: @supabase/postgres-meta (npm), run against the local
# database (which must have the migrations applied: `bash scripts/db.sh push`).
#   bash scripts/gen-types.sh            rewrite client/src/database.types.ts
#   bash scripts/gen-types.sh OUT        write elsewhere (tests/client/types.test.ts compares)
# Environment: USER_SYNC_DB_PORT (54322) or USER_SYNC_DB_URL.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/client/src/database.types.ts}"
DB_URL="${USER_SYNC_DB_URL:-postgresql://postgres:postgres@127.0.0.1:${USER_SYNC_DB_PORT:-54322}/postgres}"
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
PG_META_GENERATE_TYPES=typescript PG_META_DB_URL="$DB_URL" \
  PG_META_GENERATE_TYPES_INCLUDED_SCHEMAS=public \
  node "$ROOT/node_modules/@supabase/postgres-meta/dist/server/server.js" >"$tmp" 2>/dev/null
[ -s "$tmp" ] || { echo "gen-types: the generator printed nothing (is the database up?)" >&2; exit 1; }
mv "$tmp" "$OUT"
