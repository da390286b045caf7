-- -----------------------------------------------------------------------------
-- Trigger on auth.users: instant sync on insert and on every relevant update
-- (sign-in, metadata merge, email change, confirmation, soft delete,
-- anonymous -> permanent). Fail-open: it never blocks a sign-up or a sign-in. A
-- failure is recorded in user_sync.errors, raised as a WARNING and healed by the
-- next reconcile. Lock waits are bounded (2 s in all) so a long reconcile cannot
-- stall sign-ins, and taken in short slices, below deadlock_timeout: an admin's role
-- change locks the profile first and then waits for this auth.users row (the
-- write-back), the opposite order. Between slices the trigger checks whether the
-- transaction holding the profile waits for this one; if so it does not wait (that
-- would be a deadlock, and the admin would get it): it records a note, and the role
-- change syncs the profile itself right after this commits (resolving the note).
-- -----------------------------------------------------------------------------
create or replace function user_sync.on_auth_user_change() returns trigger
language plpgsql
security definer
set search_path = ''
set lock_timeout = '2s'
as $$
declare
  v_state text;
  v_message text;
  v_detail text;
  v_deadline timestamptz := clock_timestamp() + interval '2 seconds';
begin
  begin
    loop
      begin
        perform set_config('lock_timeout', '100ms', true);
        perform user_sync.sync_user(new.id);
        return null;
      exception when lock_not_available then
        get stacked diagnostics v_state = returned_sqlstate, v_message = message_text, v_detail = pg_exception_detail;
      end;
      -- Is the transaction that holds the profile row (its xmax) waiting for ours,
      -- directly or behind others queued for the same auth.users row?
      if exists (
        with recursive holder as (
          select l.pid
          from public.users u
          join pg_catalog.pg_locks l
            on l.locktype = 'transactionid' and l.granted and l.transactionid = u.xmax
          where u.id = new.id
        ), chain (pid, depth) as (
          select h.pid, 0 from holder h
          union
          select b.pid, c.depth + 1
          from chain c
          cross join lateral unnest(pg_catalog.pg_blocking_pids(c.pid)) as b (pid)
          where c.depth < 8
        )
        select 1 from chain where chain.pid = pg_catalog.pg_backend_pid()
      ) then
        perform user_sync.record_error(new.id, 'trigger', v_state,
          'profile locked by a transaction that waits for this one (a role change): left to it', null);
        return null;
      end if;
      exit when clock_timestamp() >= v_deadline;
    end loop;
  exception when others then
    get stacked diagnostics v_state = returned_sqlstate, v_message = message_text, v_detail = pg_exception_detail;
  end;
  -- Not synced (an error, or the lock budget spent): record it, heal later.
  perform user_sync.record_error(new.id, 'trigger', v_state, v_message, v_detail);
  raise warning 'user_sync: profile of user % not synced (%: %); the next reconcile will heal it',
    new.id, v_state, v_message;
  return null;
end
$$;
comment on function user_sync.on_auth_user_change() is
  'AFTER INSERT/UPDATE trigger on auth.users: syncs the profile, never fails the auth write.';
revoke execute on function user_sync.on_auth_user_change() from public, anon, authenticated;

create or replace trigger user_sync_on_auth_user_insert
  after insert on auth.users
  for each row execute function user_sync.on_auth_user_change();

create or replace trigger user_sync_on_auth_user_update
  after update on auth.users
  for each row
  when ((
    old.email, old.phone, old.raw_user_meta_data, old.raw_app_meta_data, old.email_confirmed_at,
    old.last_sign_in_at, old.is_anonymous, old.deleted_at, old.created_at
  ) is distinct from (
    new.email, new.phone, new.raw_user_meta_data, new.raw_app_meta_data, new.email_confirmed_at,
    new.last_sign_in_at, new.is_anonymous, new.deleted_at, new.created_at
  ))
  execute function user_sync.on_auth_user_change();

