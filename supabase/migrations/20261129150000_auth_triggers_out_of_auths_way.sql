-- 0.2.0: never get in Auth's way (issue 10) and the role-change deadlock (issue 11 item 3).
--   * The auth.users triggers lose their WHEN clause (it held catalog dependencies on
--     nine auth.users columns and blocked Auth's own ALTER COLUMN ... TYPE); the
--     comparison moves into the function body.
--   * Sign-ins return after one comparison; every error (query_canceled included) is
--     caught; lock waits are bounded to 2 s per transaction; a role change holding the
--     profile (MultiXact xmax included) is found and left to sync it.
--   * user_sync.health() reports why sync would stop: triggers, cron job, Vault
--     secrets, stale reconcile, open errors.

-- -----------------------------------------------------------------------------
-- user_sync.record_error: write one error row; never raises, so that recording a
-- failure can never turn into a failed sign-up.
-- -----------------------------------------------------------------------------
create or replace function user_sync.record_error(
  p_user_id uuid,
  p_source text,
  p_sqlstate text,
  p_message text,
  p_detail text default null,
  p_run_id bigint default null
) returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into user_sync.errors (user_id, source, run_id, sqlstate, message, detail)
  values (p_user_id, coalesce(p_source, 'unknown'), p_run_id, p_sqlstate,
          left(coalesce(p_message, 'unknown error'), 2000), left(p_detail, 2000));
exception when others or query_canceled then
  raise warning 'user_sync: could not record the failed sync of user % (%): %', p_user_id, p_message, sqlerrm;
end
$$;
comment on function user_sync.record_error(uuid, text, text, text, text, bigint) is
  'Records a failed sync of one user in user_sync.errors; swallows its own failure (with a WARNING).';
revoke execute on function user_sync.record_error(uuid, text, text, text, text, bigint) from public, anon, authenticated;

-- -----------------------------------------------------------------------------
-- user_sync.sync_user: make one profile match its auth user.
-- Returns inserted, updated, unchanged or deleted. Used by the auth trigger, the
-- edge functions and reconcile's per-user fallback. Raises on failure; callers
-- that must not fail (the trigger) catch and record.
-- -----------------------------------------------------------------------------
create or replace function user_sync.sync_user(p_user_id uuid) returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_state user_sync.profile_state;
  d user_sync.expected_profile;
  v_result text;
begin
  if p_user_id is null then
    raise exception using errcode = '22004', message = 'user_sync.sync_user: p_user_id must not be null';
  end if;

  -- Two rounds at most: an insert that loses a race with a concurrent insert of the
  -- same profile turns into an update on the second round.
  for v_round in 1..2 loop
    if exists (select 1 from public.users u where u.id = p_user_id) then
      v_state := user_sync.profile_state(p_user_id);
      d := v_state.expected;
    else
      -- No profile yet (a sign-up): only the derived row is needed, not the
      -- comparison (half the cost of the profile_state lookup).
      d := user_sync.expected_profile(p_user_id);
      v_state := row(d, false, false, null)::user_sync.profile_state;
    end if;

    if d.id is null then
      -- The auth user is gone: so goes the profile.
      delete from public.users u where u.id = p_user_id;
      v_result := case when found then 'deleted' else 'unchanged' end;
    elsif not v_state.profile_exists then
      insert into public.users (
        id, email, phone, name, avatar_url, role, provider, providers, is_anonymous,
        email_confirmed_at, last_sign_in_at, created_at, deleted_at, updated_at, synced_at
      ) values (
        d.id, d.email, d.phone, d.name, d.avatar_url, d.role, d.provider, d.providers, d.is_anonymous,
        d.email_confirmed_at, d.last_sign_in_at, d.created_at, d.deleted_at, now(), clock_timestamp()
      )
      on conflict (id) do nothing;
      if not found then
        continue;
      end if;
      v_result := 'inserted';
    elsif v_state.drifted then
      update public.users u set
        email = d.email,
        phone = d.phone,
        name = case when u.name_edited_at is null then d.name else u.name end,
        avatar_url = case when u.avatar_url_edited_at is null then d.avatar_url else u.avatar_url end,
        role = d.role,
        provider = d.provider,
        providers = d.providers,
        is_anonymous = d.is_anonymous,
        email_confirmed_at = d.email_confirmed_at,
        last_sign_in_at = d.last_sign_in_at,
        created_at = d.created_at,
        deleted_at = d.deleted_at,
        updated_at = now(),
        synced_at = clock_timestamp()
      where u.id = d.id;
      v_result := 'updated';
    else
      v_result := 'unchanged';
    end if;
    exit;
  end loop;
  if v_result is null then
    return 'unchanged';
  end if;

  -- In sync now: resolve the user's open errors (never raises, so that a broken error
  -- log cannot stop a sync).
  perform user_sync.resolve_errors(p_user_id);
  return v_result;
end
$$;
comment on function user_sync.sync_user(uuid) is
  'Makes the profile of one user match auth.users. Returns inserted, updated, unchanged or deleted (auth user gone). Resolves that user''s open errors.';
revoke execute on function user_sync.sync_user(uuid) from public, anon, authenticated;
grant execute on function user_sync.sync_user(uuid) to service_role;

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

  -- What is left of this transaction's 2 s of lock waits.
  v_budget_ms := coalesce(nullif(current_setting('user_sync.lock_budget_ms', true), '')::integer, 2000);
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

-- -----------------------------------------------------------------------------
-- user_sync.health: is sync running? {ok, problems: [{code, message, hint}]}, part of
-- user_sync.status(). Sync can stop silently: the auth.users triggers vanish after a
-- `supabase db pull`/`db diff` round trip or get disabled, the cron job is removed,
-- paused or fails for weeks, its Vault secrets are missing, its calls never complete,
-- users fail to sync. Each is a problem with a code; README "Troubleshooting" maps
-- each code to its fix. Never raises (a missing pg_cron or Vault is a problem, not an
-- error) and stays cheap: catalog lookups, the last runs of the job, index probes.
-- -----------------------------------------------------------------------------
create or replace function user_sync.health() returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_problems jsonb := '[]'::jsonb;
  v_trigger text;
  v_enabled "char";
  v_job_id bigint;
  v_job_active boolean;
  v_failed integer;
  v_last_message text;
  v_secret text;
  v_last_ok timestamptz;
  v_open bigint;
begin
  -- The triggers on auth.users.
  foreach v_trigger in array array['user_sync_on_auth_user_insert', 'user_sync_on_auth_user_update'] loop
    select t.tgenabled into v_enabled
    from pg_catalog.pg_trigger t
    where t.tgrelid = pg_catalog.to_regclass('auth.users') and t.tgname = v_trigger and not t.tgisinternal;
    if not found then
      v_problems := v_problems || jsonb_build_object('code', 'trigger_missing',
        'message', format('Trigger %s on auth.users is missing: profiles are no longer created or updated instantly.', v_trigger),
        'hint', format('create or replace trigger %s after %s on auth.users for each row execute function user_sync.on_auth_user_change(); then select user_sync.reconcile();',
          v_trigger, case when v_trigger like '%insert' then 'insert' else 'update' end));
    elsif v_enabled in ('D', 'R') then
      v_problems := v_problems || jsonb_build_object('code', 'trigger_disabled',
        'message', format('Trigger %s on auth.users is disabled: profiles are no longer synced instantly.', v_trigger),
        'hint', format('alter table auth.users enable trigger %s; then select user_sync.reconcile();', v_trigger));
    end if;
  end loop;

  -- The cron job and its recent runs.
  begin
    if pg_catalog.to_regclass('cron.job') is null then
      v_problems := v_problems || jsonb_build_object('code', 'cron_job_missing',
        'message', 'pg_cron is not installed: nothing heals drift every 5 minutes.',
        'hint', 'Enable the pg_cron extension, then schedule the user-sync job (README "Troubleshooting").');
    else
      execute 'select j.jobid, j.active from cron.job j where j.jobname = $1 order by j.jobid limit 1'
        into v_job_id, v_job_active using 'user-sync';
      if v_job_id is null then
        v_problems := v_problems || jsonb_build_object('code', 'cron_job_missing',
          'message', 'The pg_cron job user-sync does not exist: nothing heals drift every 5 minutes.',
          'hint', 'Schedule it again (README "Troubleshooting": cron_job_missing).');
      elsif not v_job_active then
        v_problems := v_problems || jsonb_build_object('code', 'cron_job_inactive',
          'message', 'The pg_cron job user-sync is paused (active = false): nothing heals drift.',
          'hint', 'select cron.alter_job(jobid, active => true) from cron.job where jobname = ''user-sync'';');
      end if;
      if v_job_id is not null and pg_catalog.to_regclass('cron.job_run_details') is not null then
        -- The last three finished runs (newest first, by the primary key: cheap however
        -- long the history is); failing when the newest failed.
        execute $q$
          select count(*) filter (where r.status = 'failed')::integer,
                 (array_agg(r.return_message order by r.runid desc))[1]
          from (
            select d.runid, d.status, d.return_message
            from cron.job_run_details d
            where d.jobid = $1 and d.status in ('succeeded', 'failed')
            order by d.runid desc
            limit 3
          ) r
          having (array_agg(r.status order by r.runid desc))[1] = 'failed'
        $q$ into v_failed, v_last_message using v_job_id;
        if v_failed is not null then
          v_problems := v_problems || jsonb_build_object('code', 'cron_failing',
            'message', format('The pg_cron job user-sync failed %s of its last 3 runs, the last one with: %s',
              v_failed, left(split_part(coalesce(v_last_message, 'no message'), E'\n', 1), 300)),
            'hint', format('select start_time, status, return_message from cron.job_run_details where jobid = %s order by runid desc limit 5;', v_job_id));
        end if;
      end if;
    end if;
  exception when others then
    v_problems := v_problems || jsonb_build_object('code', 'cron_job_missing',
      'message', format('The pg_cron job user-sync cannot be read (%s).', sqlerrm),
      'hint', 'Check that pg_cron is installed and that postgres can read cron.job.');
  end;

  -- The Vault secrets the job reads.
  begin
    if pg_catalog.to_regclass('vault.decrypted_secrets') is null then
      v_problems := v_problems || jsonb_build_object('code', 'vault_secret_missing',
        'message', 'Supabase Vault is not installed: the cron job cannot read user_sync_project_url and user_sync_secret_key.',
        'hint', 'Enable the supabase_vault extension, then create both secrets (README "Scheduled healing").');
    else
      foreach v_secret in array array['user_sync_project_url', 'user_sync_secret_key'] loop
        if not exists (
          select 1 from vault.decrypted_secrets s
          where s.name = v_secret and nullif(btrim(s.decrypted_secret), '') is not null
        ) then
          v_problems := v_problems || jsonb_build_object('code', 'vault_secret_missing',
            'message', format('Vault secret %s is missing or empty: the cron job fails.', v_secret),
            'hint', format('select vault.create_secret(''<value>'', %L);', v_secret));
        end if;
      end loop;
    end if;
  exception when others then
    v_problems := v_problems || jsonb_build_object('code', 'vault_secret_missing',
      'message', format('The Vault secrets cannot be read (%s).', sqlerrm),
      'hint', 'Check that supabase_vault is installed and that postgres can read vault.decrypted_secrets.');
  end;

  -- Reconcile: a successful run in the last 15 minutes while the job is scheduled.
  if v_job_id is not null and v_job_active then
    select max(r.finished_at) into v_last_ok
    from user_sync.runs r
    where r.status in ('ok', 'errors') and not r.dry_run;
    if v_last_ok is null or v_last_ok < now() - interval '15 minutes' then
      v_problems := v_problems || jsonb_build_object('code', 'reconcile_stale',
        'message', case when v_last_ok is null then 'No reconcile has succeeded yet although the cron job is scheduled.'
          else format('No reconcile has succeeded for %s minutes although the cron job is scheduled.',
            floor(extract(epoch from now() - v_last_ok) / 60)) end,
        'hint', 'The job''s calls do not reach sync-all or fail there: check net._http_response, the sync-all logs and the Vault secrets; select user_sync.reconcile(); heals now.');
    end if;
  end if;

  -- Users whose sync failed and is not healed yet.
  select count(*) into v_open from user_sync.errors e where e.resolved_at is null;
  if v_open > 0 then
    v_problems := v_problems || jsonb_build_object('code', 'open_errors',
      'message', format('%s failed sync(s) not healed yet.', v_open),
      'hint', 'select user_id, source, sqlstate, message from user_sync.errors where resolved_at is null; fix the cause, then select user_sync.reconcile();');
  end if;

  return jsonb_build_object('ok', jsonb_array_length(v_problems) = 0, 'problems', v_problems);
exception when others then
  return jsonb_build_object('ok', false, 'problems', jsonb_build_array(jsonb_build_object(
    'code', 'health_check_failed', 'message', format('The health check failed: %s', sqlerrm),
    'hint', 'Report this as a bug; the other fields of user_sync.status() still hold.')));
end
$$;
comment on function user_sync.health() is
  'Whether sync is running: {ok, problems: [{code, message, hint}]}. Codes: trigger_missing, trigger_disabled, cron_job_missing, cron_job_inactive, cron_failing, vault_secret_missing, reconcile_stale, open_errors. Never raises. Part of user_sync.status().';
revoke execute on function user_sync.health() from public, anon, authenticated;
grant execute on function user_sync.health() to service_role;
