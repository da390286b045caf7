-- -----------------------------------------------------------------------------
-- 0.3.0: one trigger per Auth write (issue 10, what we cost Auth).
-- * A sign-in fires one trigger (BEFORE UPDATE) that returns after one comparison:
--   the role stamping of 20261129120000 moves into it (user_sync.stamped_app_metadata)
--   and the AFTER UPDATE trigger goes; any other update syncs the profile to the row
--   being written (NEW, as user_sync.auth_user_fields).
-- * A sign-up fires one AFTER INSERT trigger (user_sync.on_auth_user_insert()).
-- Current definitions: supabase/schemas/30_field_rules.sql, 50_sync_user.sql,
-- 60_auth_trigger.sql, 65_role_changes.sql, 84_health.sql.
-- -----------------------------------------------------------------------------

-- The auth.users columns the field rules read, in the types the rules expect: what the
-- triggers pass for a row not yet visible in auth.users (NEW). Our own type, so that a
-- The auth.users columns the field rules read, in the types the rules expect: what the
-- triggers pass for a row not yet visible in auth.users (NEW). Our own type, so that a
-- type Auth gives one of its columns never reaches a compiled plan: the triggers cast.
create type user_sync.auth_user_fields as (
  id uuid,
  email text,
  phone text,
  raw_user_meta_data jsonb,
  raw_app_meta_data jsonb,
  is_anonymous boolean,
  email_confirmed_at timestamptz,
  last_sign_in_at timestamptz,
  created_at timestamptz,
  deleted_at timestamptz
);
comment on type user_sync.auth_user_fields is
  'The auth.users columns the field rules read, cast to the types the rules expect; what the auth.users triggers pass for the row being written.';

-- A rule text (expected_profiles_sql() or profile_diff_sql()) reading its auth users
-- from another source than the table auth.users: a derived table aliased au with the
-- columns of user_sync.auth_user_fields. Raises unless the text reads auth.users
-- exactly once, so that a change of the rules cannot compile into a wrong function.
create or replace function user_sync.field_rules_over(p_rules text, p_source text) returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_from constant text := 'from auth.users au';
begin
  if (length(p_rules) - length(replace(p_rules, v_from, ''))) / length(v_from) <> 1 then
    raise exception 'user_sync.field_rules_over: the rule text must contain "%" exactly once', v_from;
  end if;
  return replace(p_rules, v_from, 'from ' || p_source);
end
$$;
comment on function user_sync.field_rules_over(text, text) is
  'A field-rule text with its auth.users source replaced by another derived table aliased au (a trigger''s NEW as user_sync.auth_user_fields).';
revoke execute on function user_sync.field_rules_over(text, text) from public, anon, authenticated;

-- Compiles the per-user functions from the rule texts above: static PL/pgSQL, so a
-- sign-up or sign-in pays for an index probe, not for planning the rules. Run it
-- after any change to the rule texts (every migration that changes them does).
create or replace function user_sync.compile_field_rules() returns void
language plpgsql
set search_path = ''
as $compile$
begin
  execute format($def$
create or replace function user_sync.expected_profile(p_user_id uuid) returns user_sync.expected_profile
language plpgsql
stable
set search_path = ''
as $body$
-- Compiled by user_sync.compile_field_rules() from user_sync.expected_profiles_sql().
declare
  v_profile user_sync.expected_profile;
begin
  select d.* into v_profile from (%s) d where d.id = p_user_id;
  return v_profile;
end
$body$
$def$, user_sync.expected_profiles_sql());
  comment on function user_sync.expected_profile(uuid) is
    'What the profile of one auth user should be (all fields null when the auth user does not exist). Compiled from user_sync.expected_profiles_sql().';
  revoke execute on function user_sync.expected_profile(uuid) from public, anon, authenticated;

  execute format($def$
create or replace function user_sync.profile_state(p_user_id uuid) returns user_sync.profile_state
language plpgsql
stable
set search_path = ''
as $body$
-- Compiled by user_sync.compile_field_rules() from user_sync.profile_diff_sql().
declare
  v_state user_sync.profile_state;
begin
  select
    case when x.id is not null then row(x.id, x.email, x.phone, x.name, x.avatar_url, x.role, x.provider,
      x.providers, x.is_anonymous, x.email_confirmed_at, x.last_sign_in_at, x.created_at, x.deleted_at)::user_sync.expected_profile end,
    x.profile_id is not null, x.drifted, x.profile_xmin
  into v_state
  from (%s) x
  where x.id = p_user_id;
  return v_state;
end
$body$
$def$, user_sync.profile_diff_sql());
  comment on function user_sync.profile_state(uuid) is
    'The state of one user''s profile: expected profile (null when the auth user is gone), whether a profile exists, drifted, row version. Compiled from user_sync.profile_diff_sql().';
  revoke execute on function user_sync.profile_state(uuid) from public, anon, authenticated;

  -- The same for an auth row given as values (a trigger's NEW, not visible in auth.users
  -- yet): the rules read it instead of auth.users.
  execute format($def$
create or replace function user_sync.profile_state_of(p_auth user_sync.auth_user_fields) returns user_sync.profile_state
language plpgsql
stable
set search_path = ''
as $body$
-- Compiled by user_sync.compile_field_rules() from user_sync.profile_diff_sql().
declare
  v_state user_sync.profile_state;
begin
  select
    case when x.id is not null then row(x.id, x.email, x.phone, x.name, x.avatar_url, x.role, x.provider,
      x.providers, x.is_anonymous, x.email_confirmed_at, x.last_sign_in_at, x.created_at, x.deleted_at)::user_sync.expected_profile end,
    x.profile_id is not null, x.drifted, x.profile_xmin
  into v_state
  from (%s) x
  where x.id = p_auth.id;
  return v_state;
end
$body$
$def$, user_sync.field_rules_over(user_sync.profile_diff_sql(),
    -- offset 0 keeps the row a subquery, so that the filter on its id turns the full join
    -- into an index probe of public.users (flattened, the filter compares the parameter
    -- with itself and the join scans every profile)
    '(select (p_auth).* offset 0) au'));
  comment on function user_sync.profile_state_of(user_sync.auth_user_fields) is
    'user_sync.profile_state() of an auth row given as values (a trigger''s NEW). Compiled from user_sync.profile_diff_sql().';
  revoke execute on function user_sync.profile_state_of(user_sync.auth_user_fields) from public, anon, authenticated;
end
$compile$;
comment on function user_sync.compile_field_rules() is
  'Compiles user_sync.expected_profile(uuid), user_sync.profile_state(uuid) and user_sync.profile_state_of(user_sync.auth_user_fields) from the rule texts. Run after changing user_sync.expected_profiles_sql() or profile_diff_sql().';
revoke execute on function user_sync.compile_field_rules() from public, anon, authenticated;

-- One home for writing a profile: from the auth.users row (p_auth null), or from the
-- auth row given as values (a BEFORE trigger's NEW, which auth.users does not show yet).
create or replace function user_sync.sync_profile(p_user_id uuid, p_auth user_sync.auth_user_fields) returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_state user_sync.profile_state;
  d user_sync.expected_profile;
  v_result text;
begin
  if p_user_id is null or p_user_id is distinct from coalesce(p_auth.id, p_user_id) then
    raise exception using errcode = '22004', message = 'user_sync.sync_user: p_user_id must not be null (and must be p_auth.id)';
  end if;

  -- Two rounds at most: an insert that loses a race with a concurrent insert of the
  -- same profile turns into an update on the second round.
  for v_round in 1..2 loop
    if p_auth.id is not null then
      v_state := user_sync.profile_state_of(p_auth);
      d := v_state.expected;
    elsif exists (select 1 from public.users u where u.id = p_user_id) then
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
comment on function user_sync.sync_profile(uuid, user_sync.auth_user_fields) is
  'Makes the profile of one user match its auth row: the auth.users row when p_auth is null, else the values given (the row an auth.users trigger is writing). Returns inserted, updated, unchanged or deleted. Resolves that user''s open errors.';
revoke execute on function user_sync.sync_profile(uuid, user_sync.auth_user_fields) from public, anon, authenticated;

create or replace function user_sync.sync_user(p_user_id uuid) returns text
language sql
security definer
set search_path = ''
as $$
  select user_sync.sync_profile(p_user_id, null);
$$;
comment on function user_sync.sync_user(uuid) is
  'Makes the profile of one user match auth.users. Returns inserted, updated, unchanged or deleted (auth user gone). Resolves that user''s open errors.';
revoke execute on function user_sync.sync_user(uuid) from public, anon, authenticated;
grant execute on function user_sync.sync_user(uuid) to service_role;

create or replace function user_sync.stamped_app_metadata(p_old jsonb, p_new jsonb) returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
  v_old_stamp jsonb;
  v_new_stamp jsonb;
  v_old_version numeric;
  v_new_version numeric;
begin
  if (p_new -> 'role', p_new -> 'user_sync_role_stamp') is not distinct from (p_old -> 'role', p_old -> 'user_sync_role_stamp')
     or jsonb_typeof(p_new) is distinct from 'object' then
    return p_new;
  end if;
  if jsonb_typeof(p_old -> 'user_sync_role_stamp') = 'object' then
    v_old_stamp := p_old -> 'user_sync_role_stamp';
  end if;
  if jsonb_typeof(p_new -> 'user_sync_role_stamp') = 'object' then
    v_new_stamp := p_new -> 'user_sync_role_stamp';
  end if;
  v_old_version := case when jsonb_typeof(v_old_stamp -> 'v') = 'number' then (v_old_stamp ->> 'v')::numeric else 0 end;
  v_new_version := case when jsonb_typeof(v_new_stamp -> 'v') = 'number' then (v_new_stamp ->> 'v')::numeric else 0 end;

  if v_new_version < v_old_version
     and nullif(p_new -> 'role', 'null') is not distinct from
         nullif(case when v_new_stamp is not null then v_new_stamp -> 'role' else v_old_stamp -> 'base' end, 'null') then
    -- A stale copy written back without touching the role: keep the newer role change.
    return (p_new - 'role' - 'user_sync_role_stamp')
      || jsonb_build_object('user_sync_role_stamp', v_old_stamp)
      || case when p_old ? 'role' then jsonb_build_object('role', p_old -> 'role') else '{}'::jsonb end;
  elsif (p_new -> 'role') is distinct from (p_old -> 'role') then
    -- A role change: stamp it.
    return p_new || jsonb_build_object('user_sync_role_stamp', jsonb_strip_nulls(jsonb_build_object(
      'v', greatest(v_old_version, v_new_version) + 1,
      'role', p_new -> 'role',
      'from', p_old -> 'role',
      'base', case when v_old_stamp is null then p_old -> 'role' else v_old_stamp -> 'base' end,
      'at', now()
    )));
  elsif v_old_stamp is null then
    -- Same role, a stamp removed or made up: the stamp is ours.
    return p_new - 'user_sync_role_stamp';
  end if;
  return p_new || jsonb_build_object('user_sync_role_stamp', v_old_stamp);
end
$$;
comment on function user_sync.stamped_app_metadata(jsonb, jsonb) is
  'The raw_app_meta_data an auth.users write must store: every role change stamped in user_sync_role_stamp, a stale copy written back keeping the newer role. Used by the BEFORE UPDATE trigger on auth.users.';
revoke execute on function user_sync.stamped_app_metadata(jsonb, jsonb) from public, anon, authenticated;

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
  perform user_sync.record_error(p_user_id, 'trigger', v_state, v_message, v_detail);
  raise warning 'user_sync: profile of user % not synced (%: %); the next reconcile will heal it',
    p_user_id, v_state, v_message;
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
      perform user_sync.record_error(new.id, 'trigger', v_state, v_message, null);
      raise warning 'user_sync: profile of user % not synced (%: %); the next reconcile will heal it',
        new.id, v_state, v_message;
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

select user_sync.compile_field_rules();

-- The AFTER INSERT trigger (a sign-up): the new row is in auth.users already.
create or replace function user_sync.on_auth_user_insert() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform user_sync.sync_within_lock_budget(new.id, null);
  return null;
end
$$;
comment on function user_sync.on_auth_user_insert() is
  'AFTER INSERT trigger on auth.users (a sign-up): creates the profile; never fails the sign-up; waits at most 2 s for locks per transaction.';
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

drop function if exists user_sync.keep_role_change();
drop function if exists user_sync.on_auth_user_change();

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
