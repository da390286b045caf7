#!/usr/bin/env bash
# One incremental reconcile pass in calls of 1 s (each call its own psql, as sync-all's
# calls are each their own transaction), with a sign-up (an insert into auth.users as
# supabase_auth_admin; our trigger inserts its profile) after every call made while the
# pass is in PHASE (auth: walking auth.users, profiles: walking public.users, none).
# Prints the sign-ups, the pass's calls and time, and the phase it ended in (deleted:
# it left out the id merge; ids: it merged). For a kept benchmark cluster:
#   PGPASSWORD=postgres bash bench/sign-ups-during-a-pass.sh 54395 profiles
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/reconcile-pass.sh"
port="${1:?port}"
phase="${2:?phase: auth, profiles or none}"
db=(psql -X -h 127.0.0.1 -p "$port" -d postgres -Atq)
sign_ups=0
sign_up_during() {
  [ "$1" = "$phase" ] || return 0
  "${db[@]}" -U supabase_auth_admin -c "insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
    values (gen_random_uuid(), 'authenticated', 'authenticated', 'during.' || clock_timestamp()::text || '@example.com',
            '{\"provider\": \"email\", \"providers\": [\"email\"]}', '{}', now(), now())" > /dev/null
  sign_ups=$((sign_ups + 1))
}
reconcile_pass "$port" sign_up_during
echo "sign-ups during phase $phase: $sign_ups; pass: $PASS_CALLS calls, $PASS_MS ms, ended in phase $PASS_PHASE"
