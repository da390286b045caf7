-- -----------------------------------------------------------------------------
-- Triggers on auth.users: instant sync on insert and on every update that changes
-- what the profile mirrors (metadata merge, email or phone change, confirmation,
-- soft delete, anonymous -> permanent). One trigger per write:
--   * user_sync_on_auth_user_insert, AFTER INSERT (a sign-up): inserts the derived
--     profile in one statement, from the row being inserted (NEW);
--   * user_sync_on_auth_user_update, BEFORE UPDATE: a sign-in returns after one
--     comparison; any other write has its role change stamped (65_role_changes.sql)
--     and the profile follows the row being written (NEW, given as values).
-- What Auth can expect from them:
--   * Its migrations: no WHEN clause and no column list, so no catalog dependency on
--     an auth.users column (Auth can ALTER COLUMN ... TYPE any of them); every column
--     is read in a function body, cast to the type our code expects.
--   * Its latency: a sign-up costs one insert of the derived profile (no lookup, no
--     error log, one subtransaction); a sign-in that only moves last_sign_in_at (of a user who signed in
--     before) and writes to columns we do not mirror costs one trigger call and one
--     comparison: no query, no subtransaction, no second trigger. The mirror's
--     last_sign_in_at then follows at the next reconcile, which re-derives every auth
--     row written since its last run (the row's new xmin).
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

-- A profile an auth.users trigger could not sync: recorded in user_sync.errors for
-- reconcile and raised as a WARNING, never as an error (record_error swallows its own
-- failure). One home for what every trigger path does when it gives up.
create or replace function user_sync.record_unsynced(p_user_id uuid, p_state text, p_message text, p_detail text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  perform user_sync.record_error(p_user_id, 'trigger', p_state, p_message, p_detail);
  raise warning 'user_sync: profile of user % not synced (%: %); the next reconcile will heal it',
    p_user_id, p_state, p_message;
end
$$;
comment on function user_sync.record_unsynced(uuid, text, text, text) is
  'Records a profile an auth.users trigger could not sync (user_sync.errors, source trigger) and raises a WARNING saying the next reconcile heals it.';
revoke execute on function user_sync.record_unsynced(uuid, text, text, text) from public, anon, authenticated;

-- What is left of this transaction's 2 s of lock waits: the transaction-local setting
-- user_sync.lock_budget_ms, which anyone could set, read without a cast that could fail.
create or replace function user_sync.lock_budget_ms() returns integer
language sql
stable
set search_path = ''
as $$
  select case when current_setting('user_sync.lock_budget_ms', true) ~ '^[0-9]{1,4}$'
    then least(current_setting('user_sync.lock_budget_ms', true)::integer, 2000) else 2000 end;
$$;
comment on function user_sync.lock_budget_ms() is
  'Milliseconds of lock waits the auth.users triggers may still spend in this transaction (2,000 at its start).';
revoke execute on function user_sync.lock_budget_ms() from public, anon, authenticated;

-- Syncs the profile of the auth row a trigger is writing (given as values, or read from
-- auth.users when p_auth is null), within the transaction's 2 s of lock waits; never
-- raises: what it cannot sync it records for reconcile.
create or replace function user_sync.sync_within_lock_budget(p_user_id uuid, p_auth user_sync.auth_user_fields) returns void
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
  v_budget_ms := user_sync.lock_budget_ms();
  v_slice_ms := 10; -- the first wait is short: a waiting role change is found at once
  loop
    v_started := clock_timestamp();
    begin
      v_lock_timeout := current_setting('lock_timeout');
      perform set_config('lock_timeout', greatest(least(v_slice_ms, v_budget_ms), 1) || 'ms', true);
      perform user_sync.sync_profile(p_user_id, p_auth);
      perform set_config('lock_timeout', v_lock_timeout, true);
      return;
    exception
      when lock_not_available then
        get stacked diagnostics v_state = returned_sqlstate, v_message = message_text, v_detail = pg_exception_detail;
      when others or query_canceled then
        get stacked diagnostics v_state = returned_sqlstate, v_message = message_text, v_detail = pg_exception_detail;
        exit;
    end;
    v_budget_ms := greatest(v_budget_ms - ceil(extract(epoch from clock_timestamp() - v_started) * 1000)::integer, 0);
    perform set_config('user_sync.lock_budget_ms', v_budget_ms::text, true);
    if user_sync.profile_locked_by_waiter(p_user_id) then
      perform user_sync.record_error(p_user_id, 'trigger', v_state,
        'profile locked by a transaction that waits for this one (a role change): left to it', null);
      return;
    end if;
    exit when v_budget_ms <= 0;
    v_slice_ms := 200;
  end loop;
  -- Not synced (an error, or the lock budget spent): record it, heal later.
  perform user_sync.record_unsynced(p_user_id, v_state, v_message, v_detail);
exception when others or query_canceled then
  -- Never fail the auth write, not even for a broken error log.
  raise warning 'user_sync: profile of user % not synced (%); the next reconcile will heal it', p_user_id, sqlerrm;
end
$$;
comment on function user_sync.sync_within_lock_budget(uuid, user_sync.auth_user_fields) is
  'Syncs the profile of the auth row an auth.users trigger is writing (the values given, or the auth.users row when null), waiting at most 2 s for locks per transaction; records what it cannot sync. Never raises.';
revoke execute on function user_sync.sync_within_lock_budget(uuid, user_sync.auth_user_fields) from public, anon, authenticated;

-- The BEFORE UPDATE trigger. The comparison casts each column to the type our code
-- reads, so that a column type Auth changes (json for jsonb, text for varchar) keeps
-- comparing once a session plans it again.
create or replace function user_sync.on_auth_user_update() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_app jsonb;
  v_auth user_sync.auth_user_fields;
  v_state text;
  v_message text;
begin
  -- Every sign-in: nothing the profile mirrors changed, raw_app_meta_data included
  -- (so no role change either).
  begin
    if (new.email::text, new.phone::text, new.raw_user_meta_data::jsonb, new.raw_app_meta_data::jsonb,
        new.email_confirmed_at::timestamptz, new.is_anonymous::boolean, new.deleted_at::timestamptz,
        new.created_at::timestamptz, new.last_sign_in_at is null)
       is not distinct from
       (old.email::text, old.phone::text, old.raw_user_meta_data::jsonb, old.raw_app_meta_data::jsonb,
        old.email_confirmed_at::timestamptz, old.is_anonymous::boolean, old.deleted_at::timestamptz,
        old.created_at::timestamptz, old.last_sign_in_at is null) then
      return new;
    end if;
  exception when others or query_canceled then
    -- A column type Auth changed under a plan this session had cached ("type of
    -- parameter does not match"): let the session plan again, take the full path.
    if sqlstate = '42804' then
      discard plans;
    end if;
  end;

  -- The row as it will be written, a role change stamped (a stale copy's role undone).
  -- Two rounds at most: the second after plans made again (see above).
  for v_round in 1..2 loop
    begin
      v_app := user_sync.stamped_app_metadata(old.raw_app_meta_data::jsonb, new.raw_app_meta_data::jsonb);
      v_auth := row(new.id, new.email::text, new.phone::text, new.raw_user_meta_data::jsonb,
        v_app, new.is_anonymous::boolean, new.email_confirmed_at::timestamptz,
        new.last_sign_in_at::timestamptz, new.created_at::timestamptz, new.deleted_at::timestamptz);
      exit;
    exception when others or query_canceled then
      get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
      if v_state = '42804' and v_round = 1 then
        discard plans;
        continue;
      end if;
      perform user_sync.record_unsynced(new.id, v_state, v_message, null);
      return new;
    end;
  end loop;
  new.raw_app_meta_data := v_app;
  -- The profile follows the row as it will be written.
  perform user_sync.sync_within_lock_budget(new.id, v_auth);
  return new;
end
$$;
comment on function user_sync.on_auth_user_update() is
  'BEFORE UPDATE trigger on auth.users: returns at once when nothing mirrored changed (a sign-in); otherwise stamps a role change and syncs the profile to the row being written. Never fails the auth write; waits at most 2 s for locks per transaction.';
revoke execute on function user_sync.on_auth_user_update() from public, anon, authenticated;

-- The AFTER INSERT trigger (a sign-up). A new user has no profile and no open error, so
-- the profile is inserted in one statement, the field rules over NEW
-- (user_sync.insert_profile_of), waiting at most 10 ms for a lock. Anything else takes
-- the general path, with its lock budget and its error log: a profile there already (an
-- orphan that an import under session_replication_role = replica left), a lock held
-- longer (the role's row, an app's trigger on public.users), an error (recorded there).
-- A statement timeout or a cancel stops here, recorded.
create or replace function user_sync.on_auth_user_insert() returns trigger
language plpgsql
security definer
set search_path = ''
set lock_timeout = '10ms'
as $$
declare
  v_state text;
  v_message text;
begin
  -- Two rounds at most: the second after plans made again (a column type Auth changed
  -- under a plan this session had cached: "type of parameter does not match").
  for v_round in 1..2 loop
    begin
      perform user_sync.insert_profile_of(row(new.id, new.email::text, new.phone::text,
        new.raw_user_meta_data::jsonb, new.raw_app_meta_data::jsonb, new.is_anonymous::boolean,
        new.email_confirmed_at::timestamptz, new.last_sign_in_at::timestamptz,
        new.created_at::timestamptz, new.deleted_at::timestamptz)::user_sync.auth_user_fields);
      return null;
    exception when others or query_canceled then
      get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
    end;
    exit when v_state <> '42804' or v_round = 2;
    discard plans;
  end loop;

  if v_state = '57014' then
    perform user_sync.record_unsynced(new.id, v_state, v_message, null);
    return null;
  end if;
  if v_state = '55P03' then
    -- The 10 ms waited count against the transaction's 2 s.
    perform set_config('user_sync.lock_budget_ms', greatest(user_sync.lock_budget_ms() - 10, 0)::text, true);
  end if;
  perform user_sync.sync_within_lock_budget(new.id, null);
  return null;
end
$$;
comment on function user_sync.on_auth_user_insert() is
  'AFTER INSERT trigger on auth.users (a sign-up): inserts the derived profile in one statement, else syncs it the general way; never fails the sign-up; waits at most 2 s for locks per transaction.';
revoke execute on function user_sync.on_auth_user_insert() from public, anon, authenticated;

create or replace trigger user_sync_on_auth_user_insert
  after insert on auth.users
  for each row execute function user_sync.on_auth_user_insert();

create or replace trigger user_sync_on_auth_user_update
  before update on auth.users
  for each row execute function user_sync.on_auth_user_update();

-- Retired: user_sync_keep_role_change, 0.2.0's BEFORE UPDATE trigger for role stamps
-- (now part of user_sync_on_auth_user_update). Only the owner of auth.users may drop
-- or disable a trigger on it, and migrations run as postgres, which is not its owner
-- on the hosted platform; so the trigger stays, redefined to fire on nothing Auth does
-- (a TRUNCATE of auth.users, once per statement) and to do nothing. The owner may drop
-- it (CHANGELOG 0.3.0).
create or replace function user_sync.retired_trigger() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  return null;
end
$$;
comment on function user_sync.retired_trigger() is
  'Does nothing: the function of retired triggers on auth.users that a migration, not being the table''s owner, cannot drop.';
revoke execute on function user_sync.retired_trigger() from public, anon, authenticated;

create or replace trigger user_sync_keep_role_change
  after truncate on auth.users
  for each statement execute function user_sync.retired_trigger();
