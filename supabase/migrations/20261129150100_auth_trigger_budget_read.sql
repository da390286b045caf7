-- 0.2.0: the auth trigger reads its transaction's lock budget (user_sync.lock_budget_ms)
-- without a cast that could fail: a garbage value set by anyone in the session counts as
-- a fresh 2 s budget, never as an error in Auth's write.

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
