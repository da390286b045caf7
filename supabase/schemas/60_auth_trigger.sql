-- -----------------------------------------------------------------------------
-- Triggers on auth.users: instant sync on insert and on every update that changes
-- what the profile mirrors (metadata merge, email or phone change, confirmation,
-- soft delete, anonymous -> permanent). What Auth can expect from them:
--   * Its migrations: no WHEN clause and no column list, so no catalog dependency on
--     an auth.users column (Auth can ALTER COLUMN ... TYPE any of them); the
--     comparison of old and new is done in the function body.
--   * Its latency: a sign-in that only moves last_sign_in_at (of a user who signed in
--     before) and writes to columns we do not mirror return after one comparison (no
--     query; its subtransaction writes nothing and only guards against a column type
--     Auth changed under this session's cached plan).
--     The mirror's last_sign_in_at then follows at the next reconcile, which
--     re-derives every auth row written since its last run (the row's new xmin).
--   * Fail-open: any error, query_canceled (statement_timeout) included, is recorded
--     in user_sync.errors, raised as a WARNING and healed by the next reconcile; the
--     auth write goes through.
--   * Its waits: at most 2 s of lock waits per transaction (an OAuth sign-in writes
--     the user twice; the budget is shared through the transaction-local setting
--     user_sync.lock_budget_ms), in slices below deadlock_timeout. Between slices:
--     when a transaction holding the profile row waits for this one (an admin's role
--     change: it locks the profile, then its write-back waits for this auth.users
--     row), waiting would be a deadlock: the trigger leaves the sync to that
--     transaction, which syncs the profile right after this one commits (and resolves
--     the note recorded here).
-- -----------------------------------------------------------------------------

-- Is the profile row of this user locked by a transaction that waits, directly or
-- behind others, for the calling one? The lockers are the row's xmax, or each member
-- when xmax is a MultiXact (a lock shared with KEY SHARE lockers, e.g. an insert into
-- an app table with a foreign key to public.users). Never raises.
create or replace function user_sync.profile_locked_by_waiter(p_user_id uuid) returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_xmax xid;
  v_xids xid[];
begin
  select u.xmax into v_xmax from public.users u where u.id = p_user_id;
  if v_xmax is null or v_xmax = '0'::xid then
    return false;
  end if;
  v_xids := array[v_xmax];
  begin
    v_xids := v_xids || array(select m.xid from pg_catalog.pg_get_multixact_members(v_xmax) m);
  exception when others then
    null; -- a plain transaction id, not a MultiXact
  end;
  return exists (
    with recursive chain (pid, depth) as (
      select l.pid, 0
      from pg_catalog.pg_locks l
      where l.locktype = 'transactionid' and l.granted and l.transactionid = any (v_xids)
        and l.pid <> pg_catalog.pg_backend_pid()
      union
      select b.pid, c.depth + 1
      from chain c
      cross join lateral unnest(pg_catalog.pg_blocking_pids(c.pid)) as b (pid)
      where c.depth < 8
    )
    select 1 from chain where chain.pid = pg_catalog.pg_backend_pid()
  );
exception when others or query_canceled then
  return false;
end
$$;
comment on function user_sync.profile_locked_by_waiter(uuid) is
  'Whether a transaction holding the profile row lock of this user (xmax or a MultiXact member) waits, directly or behind others, for the calling transaction. Never raises.';
revoke execute on function user_sync.profile_locked_by_waiter(uuid) from public, anon, authenticated;

create or replace function user_sync.on_auth_user_change() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_budget_ms integer;
  v_slice_ms integer;
  v_lock_timeout text;
  v_started timestamptz;
  v_state text;
  v_message text;
  v_detail text;
begin
  if tg_op = 'UPDATE' then
    begin
      if (new.email, new.phone, new.raw_user_meta_data, new.raw_app_meta_data, new.email_confirmed_at,
          new.is_anonymous, new.deleted_at, new.created_at, new.last_sign_in_at is null)
         is not distinct from
         (old.email, old.phone, old.raw_user_meta_data, old.raw_app_meta_data, old.email_confirmed_at,
          old.is_anonymous, old.deleted_at, old.created_at, old.last_sign_in_at is null) then
        return null;
      end if;
    exception when others or query_canceled then
      -- e.g. Auth changed a column's type under this session's cached plan (json has
      -- no equality at all): compare no further, sync.
      null;
    end;
  end if;

  -- What is left of this transaction's 2 s of lock waits (a setting anyone could set:
  -- read without a cast that could fail).
  v_budget_ms := case when current_setting('user_sync.lock_budget_ms', true) ~ '^[0-9]{1,4}$'
    then least(current_setting('user_sync.lock_budget_ms', true)::integer, 2000) else 2000 end;
  v_slice_ms := 10; -- the first wait is short: a waiting role change is found at once
  loop
    v_started := clock_timestamp();
    begin
      v_lock_timeout := current_setting('lock_timeout');
      perform set_config('lock_timeout', greatest(least(v_slice_ms, v_budget_ms), 1) || 'ms', true);
      perform user_sync.sync_user(new.id);
      perform set_config('lock_timeout', v_lock_timeout, true);
      return null;
    exception
      when lock_not_available then
        get stacked diagnostics v_state = returned_sqlstate, v_message = message_text, v_detail = pg_exception_detail;
      when others or query_canceled then
        get stacked diagnostics v_state = returned_sqlstate, v_message = message_text, v_detail = pg_exception_detail;
        exit;
    end;
    v_budget_ms := greatest(v_budget_ms - ceil(extract(epoch from clock_timestamp() - v_started) * 1000)::integer, 0);
    perform set_config('user_sync.lock_budget_ms', v_budget_ms::text, true);
    if user_sync.profile_locked_by_waiter(new.id) then
      perform user_sync.record_error(new.id, 'trigger', v_state,
        'profile locked by a transaction that waits for this one (a role change): left to it', null);
      return null;
    end if;
    exit when v_budget_ms <= 0;
    v_slice_ms := 200;
  end loop;
  -- Not synced (an error, or the lock budget spent): record it, heal later.
  perform user_sync.record_error(new.id, 'trigger', v_state, v_message, v_detail);
  raise warning 'user_sync: profile of user % not synced (%: %); the next reconcile will heal it',
    new.id, v_state, v_message;
  return null;
end
$$;
comment on function user_sync.on_auth_user_change() is
  'AFTER INSERT/UPDATE trigger on auth.users: syncs the profile when a mirrored column changed; never fails the auth write; waits at most 2 s for locks per transaction.';
revoke execute on function user_sync.on_auth_user_change() from public, anon, authenticated;

create or replace trigger user_sync_on_auth_user_insert
  after insert on auth.users
  for each row execute function user_sync.on_auth_user_change();

create or replace trigger user_sync_on_auth_user_update
  after update on auth.users
  for each row execute function user_sync.on_auth_user_change();
