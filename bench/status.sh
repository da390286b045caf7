#!/usr/bin/env bash
# What user_sync.status() costs at scale, side by side in one run on a fresh cluster of
# its own: before any reconcile pass (every profile derived), after a finished pass (the
# incremental count; beside it the join of both id sets it made before comparing them by
# fingerprint), after 1% of the users changed, and the floor (a heap scan of both
# tables); and, during an unfinished pass, status()'s cheap parts read apart
# (user_sync.heal_progress() and user_sync.health(): what a progress bar and a monitor poll).
# Usage: bash bench/status.sh [USERS]   (default 1000000)
# Environment: USER_SYNC_BENCH_DB_PORT (54500).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
USERS="${1:-1000000}"
export USER_SYNC_DB_PORT="${USER_SYNC_BENCH_DB_PORT:-54500}"
DB="bash $ROOT/scripts/db.sh"
export USER_SYNC_PGDATA="$($DB datadir pg-bench-status)"
$DB install
$DB start --fresh >/dev/null
trap '$DB stop >/dev/null || true' EXIT
$DB push >/dev/null
P() { $DB psql -X -q -At "$@"; }
timed() { echo "$1"; P -c '\timing on' -c "$2" | sed 's/^/  /'; }
echo "[bench/status] $USERS auth users, profiles missing"
P -c "alter table auth.users disable trigger user_sync_on_auth_user_insert"
P -c "insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
      select '00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated',
             'user' || g || '@example.com', '{\"provider\":\"email\",\"providers\":[\"email\"]}',
             jsonb_build_object('full_name', 'User ' || g), now(), now()
      from generate_series(1, $USERS) g"
P -c "alter table auth.users enable trigger user_sync_on_auth_user_insert"
P -c "vacuum analyze auth.users"
timed "status() before any reconcile pass (every profile derived):" "select user_sync.status() -> 'missing'"
P -c "select user_sync.reconcile() -> 'complete'" >/dev/null
P -c "vacuum analyze public.users"
# status() after a pass compares the id sets by size and fingerprint; before that (0.4.0 to
# 0.5.0's first code) it joined them: the join, side by side, as the reference.
JOIN="select count(a.id), count(p.id), count(*) filter (where p.id is null), count(*) filter (where a.id is null)
  from (select au.id, age(au.xmin) <= 1000 as recent from auth.users au) a
  full join (select u.id, age(u.xmin) <= 1000 as recent from public.users u) p on p.id = a.id"
for i in 1 2 3; do
  timed "status() after a finished pass, call $i:" "select user_sync.status() -> 'drifted'"
  timed "reference, call $i: the join of both id sets (what status() ran before its fingerprint)" "$JOIN"
done
P -c "update auth.users set raw_user_meta_data = '{\"full_name\": \"Changed\"}' where id in (select id from auth.users limit $((USERS / 100)))"
timed "status() with 1% of the users changed since:" "select user_sync.status() -> 'drifted'"
timed "floor: heap scan of auth.users" "select sum(length(xmin::text)) from auth.users"
timed "floor: heap scan of public.users" "select sum(length(xmin::text)) from public.users"
P -c "select user_sync.reconcile(false, 'bench', 200) -> 'complete'" >/dev/null # a pass left unfinished
timed "during an unfinished pass: status() (its heal, with the counts):" "select user_sync.status() -> 'heal' ->> 'examined'"
for i in 1 2 3; do timed "during an unfinished pass: heal_progress() alone, call $i:" "select user_sync.heal_progress() ->> 'examined'"; done
for i in 1 2 3; do timed "health() alone, call $i:" "select user_sync.health() ->> 'ok'"; done
