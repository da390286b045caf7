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
        'hint', format('create or replace trigger %s %s on auth.users for each row execute function user_sync.%s(); then select user_sync.reconcile();',
          v_trigger, case when v_trigger like '%insert' then 'after insert' else 'before update' end,
          case when v_trigger like '%insert' then 'on_auth_user_insert' else 'on_auth_user_update' end));
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
