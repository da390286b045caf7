#!/usr/bin/env bash
# Where a sign-up's cost goes (issue 10, item 2): the interleaved sign-up measurement of
# bench/auth_latency.ts (one pgbench run whose transactions pick at random between
# auth.users with our trigger and its twin with the guide's trigger; the ratio is of the
# mean latencies), repeated with parts of ours taken away one at a time:
#   installed          our sign-up trigger and public.users as the migrations left them
#   bare insert        our trigger replaced by the guide's kind: insert (id, email) values (new.id, new.email)
#   ... no trigram     the same, without public.users' two trigram GIN indexes (admin search)
#   ... no role FK     the same, without the foreign key public.users(role) -> user_sync.roles
#   installed, lean    our trigger as installed, on the lean table of the row above
# It changes the cluster while it runs (trigger body, indexes, foreign key) and puts
# everything back at the end, also when interrupted: run it on a benchmark cluster only,
# after bench/auth_latency.ts has set it up (it leaves bench.auth_users_twin there):
#   USER_SYNC_BENCH_KEEP=1 USER_SYNC_BENCH_DB_PORT=54392 npm run bench -- --only-auth-latency
#   PGPASSWORD=postgres bash bench/sign-up-decomposition.sh 54392 [seconds] [rounds]
set -euo pipefail
port="${1:?port of a benchmark cluster set up by bench/auth_latency.ts}"
seconds="${2:-10}"
rounds="${3:-3}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
admin=(env PGOPTIONS=--client-min-messages=warning psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U supabase_admin -d postgres -Atq)
work="$(mktemp -d)"

"${admin[@]}" -c "select 'bench.auth_users_twin'::regclass" > /dev/null
cp "$root/bench/sql/auth_signup.pgbench" "$work/ours.pgbench"
sed 's/auth\.users/bench.auth_users_twin/g' "$root/bench/sql/auth_signup.pgbench" > "$work/twin.pgbench"

# What is put back at the end: the trigger function, the two trigram indexes, the role key.
"${admin[@]}" -c "select pg_get_functiondef('user_sync.on_auth_user_insert()'::regprocedure) || ';'" > "$work/restore.sql"
"${admin[@]}" -c "select string_agg(pg_get_indexdef(i.indexrelid) || ';', E'\n')
  from pg_index i join pg_class c on c.oid = i.indexrelid
  where i.indrelid = 'public.users'::regclass and c.relname in ('users_email_trgm_idx', 'users_name_trgm_idx')" \
  | sed 's/^CREATE INDEX /CREATE INDEX IF NOT EXISTS /' >> "$work/restore.sql"
"${admin[@]}" -c "select format('alter table public.users drop constraint if exists users_role_fkey, add constraint users_role_fkey %s;',
    pg_get_constraintdef(oid)) from pg_constraint where conname = 'users_role_fkey' and conrelid = 'public.users'::regclass" >> "$work/restore.sql"
restore() {
  "${admin[@]}" -f "$work/restore.sql" > /dev/null && echo "restored: trigger function, trigram indexes, role key" >&2
  rm -rf "$work"
}
trap restore EXIT

bare_trigger="create or replace function user_sync.on_auth_user_insert() returns trigger
  language plpgsql security definer set search_path = '' as \$\$
  begin
    insert into public.users (id, email) values (new.id, new.email);
    return null;
  end \$\$;"
no_trigram="drop index if exists public.users_email_trgm_idx, public.users_name_trgm_idx;"
no_role_fk="alter table public.users drop constraint if exists users_role_fkey;"

# One interleaved run: prints "ratio ours_ms twin_ms".
interleaved() {
  local out
  out=$(PGOPTIONS="-c synchronous_commit=off" pgbench -n -M prepared -c 1 -T "$seconds" \
    -f "$work/ours.pgbench" -f "$work/twin.pgbench" -h 127.0.0.1 -p "$port" -U supabase_auth_admin postgres 2>&1)
  local ours twin
  ours=$(echo "$out" | grep -A4 "SQL script 1" | grep -o 'latency average = [0-9.]*' | grep -o '[0-9.]*$')
  twin=$(echo "$out" | grep -A4 "SQL script 2" | grep -o 'latency average = [0-9.]*' | grep -o '[0-9.]*$')
  [ -n "$ours" ] && [ -n "$twin" ] || { echo "pgbench failed: $out" >&2; exit 1; }
  echo "$(echo "scale=3; $twin / $ours" | bc) $ours $twin"
}

measure() {
  local name="$1" ratios=() line
  for _ in $(seq "$rounds"); do
    line=$(interleaved)
    ratios+=("${line%% *}")
    printf '  %-50s ratio %s  (ours %s ms, guide %s ms)\n' "$name" $line >&2
  done
  printf '%-50s median ratio %s\n' "$name" "$(printf '%s\n' "${ratios[@]}" | sort -n | sed -n "$(( (rounds + 1) / 2 ))p")"
}

echo "sign-up, interleaved against the guide's trigger: $rounds runs of $seconds s each, $(date -u +%FT%TZ)"
measure "installed"
"${admin[@]}" -c "$bare_trigger"
measure "bare insert (id, email)"
"${admin[@]}" -c "$no_trigram"
measure "bare insert, no trigram indexes"
"${admin[@]}" -c "$no_role_fk"
measure "bare insert, no trigram indexes, no role FK"
"${admin[@]}" -f "$work/restore.sql" > /dev/null
"${admin[@]}" -c "$no_trigram $no_role_fk"
measure "installed trigger, no trigram indexes, no role FK"
