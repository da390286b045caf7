-- -----------------------------------------------------------------------------
-- 0.5.0: a sign-up inserts its profile in one statement (issue 10, Auth's latency).
-- The AFTER INSERT trigger on auth.users inserts the profile derived from the row being
-- inserted (NEW) with user_sync.insert_profile_of, compiled from the field rules like
-- the other per-user functions: no lookup of a profile a new user cannot have, no update
-- of an error log it cannot have entries in, one subtransaction instead of three, at
-- most 10 ms of lock waits. Anything else (a profile there already, a longer lock, an
-- error) takes the general path, as before. A sign-up made while Auth has changed a
-- column's type under this session's cached plans now gets its profile at once.
-- Current definitions: supabase/schemas/30_field_rules.sql, 60_auth_trigger.sql.
-- -----------------------------------------------------------------------------

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

  -- A sign-up's profile, from the auth row being inserted (a trigger's NEW): one insert
  -- of the rules over the values, no lookup first (a new user has no profile). Its column
  -- list is the type user_sync.expected_profile's.
  execute format($def$
create or replace function user_sync.insert_profile_of(p_auth user_sync.auth_user_fields) returns void
language plpgsql
set search_path = ''
as $body$
-- Compiled by user_sync.compile_field_rules() from user_sync.expected_profiles_sql().
begin
  insert into public.users (%s, updated_at, synced_at)
  select d.*, now(), clock_timestamp()
  from (%s) d;
end
$body$
$def$,
    (select string_agg(quote_ident(a.attname), ', ' order by a.attnum)
     from pg_catalog.pg_attribute a
     where a.attrelid = (select t.typrelid from pg_catalog.pg_type t where t.oid = 'user_sync.expected_profile'::regtype)
       and a.attnum > 0 and not a.attisdropped),
    user_sync.field_rules_over(user_sync.expected_profiles_sql(), '(select (p_auth).* offset 0) au'));
  comment on function user_sync.insert_profile_of(user_sync.auth_user_fields) is
    'Inserts the profile of an auth row given as values (a sign-up''s NEW), derived by the field rules; raises when it cannot (a profile there already, a constraint). Compiled from user_sync.expected_profiles_sql().';
  revoke execute on function user_sync.insert_profile_of(user_sync.auth_user_fields) from public, anon, authenticated;
end
$compile$;
comment on function user_sync.compile_field_rules() is
  'Compiles user_sync.expected_profile(uuid), user_sync.profile_state(uuid), user_sync.profile_state_of(user_sync.auth_user_fields) and user_sync.insert_profile_of(user_sync.auth_user_fields) from the rule texts. Run after changing user_sync.expected_profiles_sql() or profile_diff_sql().';
revoke execute on function user_sync.compile_field_rules() from public, anon, authenticated;

select user_sync.compile_field_rules();

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
    perform user_sync.record_error(new.id, 'trigger', v_state, v_message, null);
    raise warning 'user_sync: profile of user % not synced (%: %); the next reconcile will heal it',
      new.id, v_state, v_message;
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
