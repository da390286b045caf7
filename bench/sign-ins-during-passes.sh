#!/usr/bin/env bash
# Incremental reconcile passes on a database where users keep signing in: GoTrue's sign-in
# (update auth.users set last_sign_in_at = now() of a random user, as supabase_auth_admin)
# at RATE a second from a background pgbench, while passes run in calls of 1 s (each call
# its own psql, as sync-all's calls are each their own transaction). Then as many passes
# with nobody writing, for comparison. Prints each pass's calls, time and the phase it
# ended in (deleted: it left out the id merge; ids: it merged, all ids or the id buckets
# whose recount disagreed). For a kept benchmark
# cluster (npm run bench -- heal with USER_SYNC_BENCH_KEEP=1):
#   PGPASSWORD=postgres bash bench/sign-ins-during-passes.sh 54501 20 5
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/reconcile-pass.sh"
port="${1:?port}"
rate="${2:-20}"
passes="${3:-5}"
db=(psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -d postgres -Atq)
work="$(mktemp -d)"
trap 'kill "$(cat "$work/pgbench.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$work"' EXIT

# The users to sign in, numbered (made once per cluster).
"${db[@]}" -U supabase_admin -c "
  create schema if not exists bench;
  create table if not exists bench.sign_in_ids as select row_number() over () as n, id from auth.users;
  grant usage on schema bench to supabase_auth_admin;
  grant select on bench.sign_in_ids to supabase_auth_admin;" > /dev/null
users=$("${db[@]}" -U supabase_admin -c "select count(*) from bench.sign_in_ids")
cat > "$work/sign_in.pgbench" <<EOF
\set k random(1, $users)
update auth.users set last_sign_in_at = now() where id = (select s.id from bench.sign_in_ids s where s.n = :k);
EOF
"${db[@]}" -U supabase_admin -c "create index if not exists sign_in_ids_n on bench.sign_in_ids (n); analyze bench.sign_in_ids" > /dev/null

report() {
  local label="$1" phase
  for i in $(seq "$passes"); do
    reconcile_pass "$port"
    phase="$PASS_PHASE"
    if [ "$phase" = ids ]; then phase="ids ($PASS_MERGED of 4096 id buckets merged)"; fi
    printf '%-22s pass %s: %4s calls %8s ms  ended in phase %-40s wrote %s\n' "$label" "$i" "$PASS_CALLS" "$PASS_MS" "$phase" "$PASS_WRITTEN"
  done
}

echo "$users auth users; $(date -u +%FT%TZ)"
reconcile_pass "$port" # a finished pass to start from
PGOPTIONS="-c synchronous_commit=off" pgbench -n -c 1 -R "$rate" -T 100000 -f "$work/sign_in.pgbench" \
  -h 127.0.0.1 -p "$port" -U supabase_auth_admin postgres > "$work/pgbench.log" 2>&1 &
echo $! > "$work/pgbench.pid"
sleep 2
report "$rate sign-ins a second"
kill "$(cat "$work/pgbench.pid")" 2>/dev/null || true
wait 2>/dev/null || true
reconcile_pass "$port" # what the sign-ins left (their last_sign_in_at)
report "nobody writing"
echo "done $(date -u +%FT%TZ)"
