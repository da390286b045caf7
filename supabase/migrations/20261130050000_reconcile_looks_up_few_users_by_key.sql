-- -----------------------------------------------------------------------------
-- 0.5.0: the parts of a reconcile pass that look up a handful of users do so by
-- primary key, whatever the planner settings. reconcile() turns nested loops off so
-- that its batches hash each side once when statistics are stale; under that setting
--   * the phase `deleted` planned its query as a parallel hash join over all of
--     public.users: at 10M users the one call of each pass that ran it took 2.4-3.6 s,
--     over the call budget + 1.5 s, even with an empty log (4.7 s in EXPLAIN ANALYZE);
--   * the deletion log's trigger, fired by reconcile's own orphan deletes, could hash
--     all of auth.users the same way;
--   * resolving the open errors of an id range hashed all of public.users (the rules'
--     full join) whenever an error was open.
-- Current definitions: supabase/schemas/75_reconcile_progress.sql, 80_reconcile.sql.
-- -----------------------------------------------------------------------------

-- Why a statement trigger: one insert per DELETE statement, whatever its size; the
-- lookup in auth.users keeps the cascade of Auth's hard deletes out of the log. It
-- fires in that cascade, so it never fails: a deletion it cannot log makes the next
-- pass's walks disagree, and the id merge finds the profile. The deleted ids are looked
-- up by primary key, so the cost follows the statement's size, never the table's, under
-- any planner settings (reconcile's orphan deletes run with nested loops off).
create or replace function user_sync.log_deleted_profiles() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into user_sync.deleted_profiles (user_id)
  select au.id from auth.users au
  where au.id = any (array(select o.id from old_profiles o));
  return null;
exception when others or query_canceled then
  raise warning 'user_sync: deleted profiles not logged (%); the next reconcile merges the ids instead', sqlerrm;
  return null;
end
$$;
comment on function user_sync.log_deleted_profiles() is
  'AFTER DELETE statement trigger on public.users: logs the deleted profiles whose auth user stays, for the next incremental reconcile pass.';
revoke execute on function user_sync.log_deleted_profiles() from public, anon, authenticated;

-- The profiles logged as deleted (user_sync.deleted_profiles) that are still missing
-- while their auth user stays: what an incremental pass inserts again instead of
-- merging the ids of both tables. logged: the log's entries, counted up to p_max + 1;
-- missing is null when there are more (a bulk delete: the id merge takes them, a
-- bounded batch at a time). Lookups by primary key only, whatever the caller's planner
-- settings (reconcile forbids nested loops for its batches): a hash join here would read
-- all of public.users to find a handful of ids (seconds at 10M users, and a parallel
-- hash is built even when the log is empty).
create or replace function user_sync.reconcile_plan_deleted(
  p_max integer,
  out logged bigint,
  out missing uuid[]
)
language plpgsql
stable
set search_path = ''
set enable_nestloop = on
set enable_hashjoin = off
set enable_mergejoin = off
as $$
begin
  select count(*) into logged from (select 1 from user_sync.deleted_profiles d limit p_max + 1) x;
  if logged > p_max then
    return;
  end if;
  select coalesce(array_agg(au.id), '{}') into missing
  from auth.users au
  where au.id = any (array(select distinct d.user_id from user_sync.deleted_profiles d))
    and not exists (select 1 from public.users u where u.id = au.id);
end
$$;
comment on function user_sync.reconcile_plan_deleted(integer) is
  'The profiles logged as deleted whose auth user stays and that are still missing (null when more than p_max entries are logged).';
revoke execute on function user_sync.reconcile_plan_deleted(integer) from public, anon, authenticated;

-- Open errors of users in the id range (p_after, p_upto] (other than this call's)
-- are resolved when the user is now in sync or gone; with p_upto null, to the end,
-- and errors without a user too.
create or replace function user_sync.reconcile_resolve_errors(
  p_after uuid,
  p_upto uuid,
  p_run_id bigint
) returns void
language plpgsql
set search_path = ''
-- The open errors' users looked up by primary key on both sides, whatever the caller's
-- planner settings: under reconcile's (nested loops off) the rules' full join hashed all
-- of public.users for a handful of users.
set enable_nestloop = on
set enable_hashjoin = off
set enable_mergejoin = off
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
comment on function user_sync.reconcile_resolve_errors(uuid, uuid, bigint) is
  'Resolves the open errors of users in an id range that are now in sync or gone.';
revoke execute on function user_sync.reconcile_resolve_errors(uuid, uuid, bigint) from public, anon, authenticated;
