-- Resolving open errors at scale: 0.4.0's function (as restored by 20261130080000: the
-- rules' full join hashed under reconcile's planner settings) against today's (the
-- errors' users looked up by key, compared as sets), twice each, alternating, on the same
-- open errors in one transaction that is rolled back; then those errors committed and one
-- pass driven in calls of 1 s (bench/sql/heal-pass.sql). On a kept benchmark cluster:
--   psql -X -h 127.0.0.1 -p $PORT -U postgres -d postgres -v n=5000 -f bench/sql/open-errors.sql
-- (:n open errors of users in sync, from a 1% sample of public.users; every open error is
-- resolved first.)
\timing on
update user_sync.errors set resolved_at = now() where resolved_at is null;

-- 0.4.0's function, for the comparison (a copy in pg_temp).
create or replace function pg_temp.resolve_errors_0_4_0(
  p_after uuid,
  p_upto uuid,
  p_run_id bigint
) returns void
language plpgsql
set search_path = ''
as $$
declare
  v_open uuid[];
  v_any boolean;
begin
  select coalesce(array_agg(distinct e.user_id) filter (where e.user_id is not null), '{}'),
         count(*) filter (where e.user_id is not null or p_upto is null) > 0
    into v_open, v_any
    from user_sync.errors e
    where e.resolved_at is null and e.run_id is distinct from p_run_id
      and (e.user_id is null
           or ((p_after is null or e.user_id > p_after) and (p_upto is null or e.user_id <= p_upto)));
  if not v_any then
    return;
  end if;
  execute format($q$
    update user_sync.errors e set resolved_at = now()
    where e.resolved_at is null
      and e.run_id is distinct from $2
      and ((e.user_id is null and $3) or e.user_id = any($1))
      and not exists (
        select 1 from (%s) x
        where x.id = any($1) and x.id = e.user_id and (x.missing or x.drifted)
      )$q$, user_sync.profile_diff_sql())
    using v_open, p_run_id, p_upto is null;
end
$$;

begin;
insert into user_sync.errors (user_id, source, sqlstate, message)
select id, 'trigger', 'XX000', 'bench' from public.users tablesample system (1) repeatable (7) limit :n;
-- reconcile's planner settings
set local enable_nestloop = off;
set local enable_mergejoin = off;
set local jit = off;
\echo 0.4.0
savepoint a;
select pg_temp.resolve_errors_0_4_0(null, null, -1);
select count(*) as still_open from user_sync.errors where resolved_at is null;
rollback to a;
\echo today
select user_sync.reconcile_resolve_errors(null, null, -1);
select count(*) as still_open from user_sync.errors where resolved_at is null;
rollback to a;
\echo 0.4.0
select pg_temp.resolve_errors_0_4_0(null, null, -1);
rollback to a;
\echo today
select user_sync.reconcile_resolve_errors(null, null, -1);
rollback;

-- The same errors committed, then one pass.
insert into user_sync.errors (user_id, source, sqlstate, message)
select id, 'trigger', 'XX000', 'bench' from public.users tablesample system (1) repeatable (7) limit :n;
\i bench/sql/heal-pass.sql
select count(*) as still_open from user_sync.errors where resolved_at is null;
select phase as pass_ended_in from user_sync.reconcile_progress where not dry_run;
