-- -----------------------------------------------------------------------------
-- 0.5.0: a reconcile batch's insert no longer deadlocks with Auth (issue 12, seen once
-- in the 10M bench's raced heal: 40P01, the bounded call rolled back). The foreign key's
-- check of a batch's inserted profiles ran at the end of the statement and waited for
-- Auth's phone or email change of one of those users, while Auth's trigger waited for the
-- profile the batch had just inserted. Each auth row is now key-share locked as the batch
-- reads it (the lock the foreign key's check takes anyway), skipping a row Auth is
-- deleting or changing a key of: that user is left to Auth's trigger and the next pass.
-- A user deleted after the batch's snapshot is skipped the same way, no longer a 23503
-- recorded in user_sync.errors.
-- Current definition: supabase/schemas/80_reconcile.sql.
-- -----------------------------------------------------------------------------

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
    with done as (
      delete from public.users u
      where u.id = any(p_ids)
        and not exists (select 1 from auth.users au where au.id = u.id)
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
