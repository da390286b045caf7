-- One reconcile pass driven in bounded calls of 1 s from one session, each call its own
-- transaction (COMMIT between calls in a DO block), as sync-all drives them; prints the
-- pass's time, calls, longest call and what it wrote. Used to re-measure a kept benchmark
-- cluster: psql -X -h 127.0.0.1 -p $PORT -U supabase_admin -d postgres -f bench/sql/heal-pass.sql
do $$
declare t0 timestamptz; c0 timestamptz; r jsonb; n int := 0; mx numeric := 0;
  ins bigint := 0; upd bigint := 0; del bigint := 0;
begin
  t0 := clock_timestamp();
  loop
    c0 := clock_timestamp();
    r := user_sync.reconcile(false, 'bench', 1000);
    n := n + 1;
    mx := greatest(mx, extract(epoch from clock_timestamp() - c0) * 1000);
    ins := ins + (r->>'inserted')::bigint; upd := upd + (r->>'updated')::bigint; del := del + (r->>'deleted')::bigint;
    commit;
    exit when (r->>'complete')::boolean;
  end loop;
  raise notice 'pass: % ms in % calls, longest % ms; inserted % updated % deleted %; status %',
    round(extract(epoch from clock_timestamp() - t0) * 1000), n, round(mx), ins, upd, del, r->>'status';
end $$;
