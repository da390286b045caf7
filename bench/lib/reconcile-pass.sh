# One reconcile pass in bounded calls of 1 s, each its own psql (as sync-all's calls are each
# their own transaction): for the bench scripts that act while a pass is under way. Source it,
# then
#   reconcile_pass PORT [BETWEEN]
# makes calls until the pass is complete. After each call that left the pass unfinished it
# runs the shell function named BETWEEN, if given, with the phase the pass is in as $1 (in
# this shell, so it may count). It then sets
#   PASS_CALLS    calls made               PASS_MS       the pass's time (ms)
#   PASS_PHASE    the phase it ended in (deleted: no id merge; ids: it merged)
#   PASS_MERGED   id buckets merged: their number of 4,096, "all", or "-" (no merge)
#   PASS_WRITTEN  profiles inserted, updated and deleted
reconcile_pass() {
  local port="$1" between="${2:-}" start r phase
  local db=(psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -d postgres -U postgres -Atq)
  start=$(date +%s%3N)
  PASS_CALLS=0
  PASS_WRITTEN=0
  while :; do
    r=$("${db[@]}" -c "select r ->> 'complete', (r ->> 'inserted')::int + (r ->> 'updated')::int + (r ->> 'deleted')::int
      from (select user_sync.reconcile(false, 'bench', 1000) as r) x")
    PASS_CALLS=$((PASS_CALLS + 1))
    PASS_WRITTEN=$((PASS_WRITTEN + ${r#*|}))
    [ "${r%%|*}" = true ] && break
    [ "$PASS_CALLS" -lt 100000 ] || { echo "the pass did not complete" >&2; return 1; }
    if [ -n "$between" ]; then
      phase=$("${db[@]}" -c "select phase from user_sync.reconcile_progress where not dry_run")
      "$between" "$phase"
    fi
  done
  PASS_MS=$(( $(date +%s%3N) - start ))
  read -r PASS_PHASE PASS_MERGED <<< "$("${db[@]}" -c "select phase, case when phase <> 'ids' then '-'
      else coalesce(cardinality(merge_buckets)::text, 'all') end from user_sync.reconcile_progress where not dry_run" | tr '|' ' ')"
}
