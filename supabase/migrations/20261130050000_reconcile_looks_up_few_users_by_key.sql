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
--     full join) whenever an error was open;
--   * deleting orphaned profiles hashed all of auth.users (the anti join).
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

-- One set-based step for the given users, each re-read by id (their state may have
-- moved since the batch was planned):
--   * 'insert' missing profiles (one the trigger inserted meanwhile wins). Each auth row
--     is key-share locked as it is read (the lock the foreign key's check takes anyway),
--     skipping a row Auth is deleting or changing a key (email, phone) of: that user is
--     left to Auth's trigger and the next pass (waiting for Auth there, while Auth's
--     trigger waits for the profile just inserted, would be a deadlock). A row deleted
--     since the statement's snapshot is skipped too, not a 23503;
--   * 'update' drifted ones (a row changed since it was read, xmin moved, is left to
--     the writer that changed it);
--   * 'delete' orphans.
-- With p_after/p_upto, the users are in that stretch of auth.users (a walk's): 'insert'
-- re-reads them by tid range, not one by one. Raises on any failing row; the caller
-- isolates it. Answers how many rows it wrote and the transaction that wrote them.
create or replace function user_sync.reconcile_apply(
  p_step text,
  p_ids uuid[],
  p_sync_ts timestamptz,
  p_after tid,
  p_upto tid,
  out rows bigint,
  out writer xid
)
language plpgsql
set search_path = ''
as $$
begin
  -- The ids are a set spread over the id space (a walk's, or the missing of an id
  -- range): looked up one by one (a bitmap of the key's entries), or, within a
  -- walk's stretch, a hashed filter on its TID Range Scan.
  case p_step
  when 'insert' then
    execute format($q$
      with done as (
        insert into public.users (
          id, email, phone, name, avatar_url, role, provider, providers, is_anonymous,
          email_confirmed_at, last_sign_in_at, created_at, deleted_at, updated_at, synced_at
        )
        select
          d.id, d.email, d.phone, d.name, d.avatar_url, d.role, d.provider, d.providers, d.is_anonymous,
          d.email_confirmed_at, d.last_sign_in_at, d.created_at, d.deleted_at, now(), $1
        from (%s) d
        on conflict (id) do nothing
        returning xmin
      )
      select count(*), min(done.xmin::text)::xid from done$q$,
        user_sync.expected_profiles_sql()
          || ' where au.id = any($2)'
          || case when p_upto is not null then ' and au.ctid > $3 and au.ctid <= $4' else '' end
          || ' for key share of au skip locked')
      into rows, writer using p_sync_ts, p_ids, coalesce(p_after, '(0,0)'::tid), p_upto;
  when 'update' then
    execute format($q$
      with todo as materialized (
        select x.* from (%s) x
        where x.id = any($1) and x.profile_id = any($1) and x.drifted
      ), done as (
        update public.users u set
          email = t.email,
          phone = t.phone,
          name = case when u.name_edited_at is null then t.name else u.name end,
          avatar_url = case when u.avatar_url_edited_at is null then t.avatar_url else u.avatar_url end,
          role = t.role,
          provider = t.provider,
          providers = t.providers,
          is_anonymous = t.is_anonymous,
          email_confirmed_at = t.email_confirmed_at,
          last_sign_in_at = t.last_sign_in_at,
          created_at = t.created_at,
          deleted_at = t.deleted_at,
          updated_at = now(),
          synced_at = $2
        from todo t
        where u.id = any($1) and u.id = t.id and u.xmin = t.profile_xmin
        returning u.xmin
      )
      select count(*), min(done.xmin::text)::xid from done$q$, user_sync.profile_diff_sql())
      into rows, writer using p_ids, p_sync_ts;
  when 'delete' then
    -- Both sides filtered by the ids: under reconcile's planner settings (nested loops
    -- off) the anti join is a hash join, which would otherwise hash all of auth.users.
    with done as (
      delete from public.users u
      where u.id = any(p_ids)
        and not exists (select 1 from auth.users au where au.id = any(p_ids) and au.id = u.id)
      returning 1
    )
    select count(*) into rows from done;
  else
    raise exception using errcode = '22023', message = format('user_sync.reconcile_apply: unknown step %L', p_step);
  end case;
end
$$;
comment on function user_sync.reconcile_apply(text, uuid[], timestamptz, tid, tid) is
  'One set-based reconcile step (insert, update, delete) for the given users; raises when any row fails.';
revoke execute on function user_sync.reconcile_apply(text, uuid[], timestamptz, tid, tid) from public, anon, authenticated;

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
