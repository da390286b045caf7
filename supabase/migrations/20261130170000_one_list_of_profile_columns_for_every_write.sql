-- -----------------------------------------------------------------------------
-- 0.5.0: one list of the profile columns for every write by sync.
--   * The columns sync writes were listed by hand in four statements (the per-user
--     insert and update of user_sync.sync_profile, reconcile's set-based insert and
--     update), beside the type user_sync.expected_profile that lists them already.
--     They are now generated from the type: user_sync.profile_columns_sql() (an
--     insert's columns and values) and user_sync.profile_update_sql() (an update's SET
--     list, keeping an app edit of name and avatar_url). The per-user writes are
--     compiled from them by user_sync.compile_field_rules() (static statements, planned
--     once per session: user_sync.insert_derived_profile, update_derived_profile);
--     reconcile's steps build them into their dynamic SQL. The statements are the same
--     as before: no behaviour changes, and the rule texts (reconcile_basis()) are
--     unchanged, so no full comparison follows the upgrade.
--   * profile_state() and profile_state_of() are compiled from one template.
-- Current definitions: supabase/schemas/30_field_rules.sql, 50_sync_user.sql,
-- 80_reconcile.sql.
-- -----------------------------------------------------------------------------

-- The derived columns in the type's order, as p_alias.column (bare names when p_alias
-- is null): an insert's column list, and its values.
create or replace function user_sync.profile_columns_sql(p_alias text) returns text
language sql
stable
set search_path = ''
as $$
  select string_agg(coalesce(quote_ident(p_alias) || '.', '') || quote_ident(a.attname), ', ' order by a.attnum)
  from pg_catalog.pg_attribute a
  where a.attrelid = 'user_sync.expected_profile'::regclass and a.attnum > 0 and not a.attisdropped;
$$;
comment on function user_sync.profile_columns_sql(text) is
  'The columns of user_sync.expected_profile in order, each prefixed with the alias given (none when null): the column list and values of every profile insert by sync.';
revoke execute on function user_sync.profile_columns_sql(text) from public, anon, authenticated;

-- The SET list of an update of profile u to the derived row p_alias (its id aside).
-- name and avatar_url belong to the app once edited (name_edited_at, avatar_url_edited_at
-- set): an edit is never overwritten. updated_at and synced_at are the caller's.
create or replace function user_sync.profile_update_sql(p_alias text) returns text
language sql
stable
set search_path = ''
as $$
  select string_agg(
    case when a.attname in ('name', 'avatar_url')
      then format('%1$I = case when u.%3$I is null then %2$I.%1$I else u.%1$I end', a.attname, p_alias, a.attname || '_edited_at')
      else format('%1$I = %2$I.%1$I', a.attname, p_alias)
    end, E',\n    ' order by a.attnum)
  from pg_catalog.pg_attribute a
  where a.attrelid = 'user_sync.expected_profile'::regclass and a.attnum > 0 and not a.attisdropped
    and a.attname <> 'id';
$$;
comment on function user_sync.profile_update_sql(text) is
  'The SET list updating profile u to the derived row of the alias given (id aside), keeping an app edit of name and avatar_url: every profile update by sync.';
revoke execute on function user_sync.profile_update_sql(text) from public, anon, authenticated;

-- Compiles the per-user functions from the rule texts above: static PL/pgSQL, so a
-- sign-up or sign-in pays for an index probe, not for planning the rules. Run it
-- after any change to the rule texts (every migration that changes them does).
create or replace function user_sync.compile_field_rules() returns void
language plpgsql
set search_path = ''
as $compile$
declare
  v_name text;
  v_parameter text;
  v_rules text;
  v_id text;
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

  -- The state of a profile, of a user by id (from auth.users) and of an auth row given as
  -- values (a trigger's NEW, not visible in auth.users yet: the rules read it instead).
  -- For the values, offset 0 keeps the row a subquery, so that the filter on its id
  -- turns the full join into an index probe of public.users (flattened, the filter
  -- compares the parameter with itself and the join scans every profile).
  for v_name, v_parameter, v_rules, v_id in
    values ('profile_state', 'p_user_id uuid', user_sync.profile_diff_sql(), 'p_user_id'),
           ('profile_state_of', 'p_auth user_sync.auth_user_fields',
            user_sync.field_rules_over(user_sync.profile_diff_sql(), '(select (p_auth).* offset 0) au'), 'p_auth.id')
  loop
    execute format($def$
create or replace function user_sync.%1$I(%2$s) returns user_sync.profile_state
language plpgsql
stable
set search_path = ''
as $body$
-- Compiled by user_sync.compile_field_rules() from user_sync.profile_diff_sql().
declare
  v_state user_sync.profile_state;
begin
  select
    case when x.id is not null then row(%3$s)::user_sync.expected_profile end,
    x.profile_id is not null, x.drifted, x.profile_xmin
  into v_state
  from (%4$s) x
  where x.id = %5$s;
  return v_state;
end
$body$
$def$, v_name, v_parameter, user_sync.profile_columns_sql('x'), v_rules, v_id);
  end loop;
  comment on function user_sync.profile_state(uuid) is
    'The state of one user''s profile: expected profile (null when the auth user is gone), whether a profile exists, drifted, row version. Compiled from user_sync.profile_diff_sql().';
  revoke execute on function user_sync.profile_state(uuid) from public, anon, authenticated;
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
    user_sync.profile_columns_sql(null),
    user_sync.field_rules_over(user_sync.expected_profiles_sql(), '(select (p_auth).* offset 0) au'));
  comment on function user_sync.insert_profile_of(user_sync.auth_user_fields) is
    'Inserts the profile of an auth row given as values (a sign-up''s NEW), derived by the field rules; raises when it cannot (a profile there already, a constraint). Compiled from user_sync.expected_profiles_sql().';
  revoke execute on function user_sync.insert_profile_of(user_sync.auth_user_fields) from public, anon, authenticated;

  -- The writes of one profile from its derived row (user_sync.sync_profile's): static
  -- statements, planned once per session.
  execute format($def$
create or replace function user_sync.insert_derived_profile(p_profile user_sync.expected_profile) returns boolean
language plpgsql
set search_path = ''
as $body$
-- Compiled by user_sync.compile_field_rules() from user_sync.profile_columns_sql().
begin
  insert into public.users (%s, updated_at, synced_at)
  values (%s, now(), clock_timestamp())
  on conflict (id) do nothing;
  return found;
end
$body$
$def$, user_sync.profile_columns_sql(null), user_sync.profile_columns_sql('p_profile'));
  comment on function user_sync.insert_derived_profile(user_sync.expected_profile) is
    'Inserts a profile from its derived row; false when a profile of that user is there already. Compiled from user_sync.profile_columns_sql().';
  revoke execute on function user_sync.insert_derived_profile(user_sync.expected_profile) from public, anon, authenticated;

  execute format($def$
create or replace function user_sync.update_derived_profile(p_profile user_sync.expected_profile) returns boolean
language plpgsql
set search_path = ''
as $body$
-- Compiled by user_sync.compile_field_rules() from user_sync.profile_update_sql().
begin
  update public.users u set %s, updated_at = now(), synced_at = clock_timestamp()
  where u.id = p_profile.id;
  return found;
end
$body$
$def$, user_sync.profile_update_sql('p_profile'));
  comment on function user_sync.update_derived_profile(user_sync.expected_profile) is
    'Updates a profile to its derived row, keeping an app edit of name and avatar_url; false when the profile is gone. Compiled from user_sync.profile_update_sql().';
  revoke execute on function user_sync.update_derived_profile(user_sync.expected_profile) from public, anon, authenticated;
end
$compile$;
comment on function user_sync.compile_field_rules() is
  'Compiles user_sync.expected_profile(uuid), user_sync.profile_state(uuid), user_sync.profile_state_of(user_sync.auth_user_fields), user_sync.insert_profile_of(user_sync.auth_user_fields), user_sync.insert_derived_profile and user_sync.update_derived_profile from the rule texts and the column list. Run after changing user_sync.expected_profiles_sql(), profile_diff_sql() or user_sync.expected_profile.';
revoke execute on function user_sync.compile_field_rules() from public, anon, authenticated;

select user_sync.compile_field_rules();

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

  -- Three rounds at most: an insert that loses a race with a concurrent insert of the
  -- same profile turns into an update on the next round, an update of a profile deleted
  -- meanwhile (by hand, behind the system's back) into an insert: left deleted, a
  -- reconcile that read this user before this write could insert it from that read.
  for v_round in 1..3 loop
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
      if not user_sync.insert_derived_profile(d) then
        continue;
      end if;
      v_result := 'inserted';
    elsif v_state.drifted then
      if not user_sync.update_derived_profile(d) then
        continue;
      end if;
      v_result := 'updated';
    else
      v_result := 'unchanged';
    end if;
    exit;
  end loop;
  if v_result is null then
    -- Inserted and deleted by others round after round: the caller records it, reconcile heals it.
    raise exception using errcode = '40001',
      message = format('user_sync.sync_user: the profile of user %s kept changing during the sync', p_user_id);
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
        insert into public.users (%s, updated_at, synced_at)
        select %s, now(), $1
        from (%s) d
        on conflict (id) do nothing
        returning xmin
      )
      select count(*), min(done.xmin::text)::xid from done$q$,
        user_sync.profile_columns_sql(null), user_sync.profile_columns_sql('d'),
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
        update public.users u set %s, updated_at = now(), synced_at = $2
        from todo t
        where u.id = any($1) and u.id = t.id and u.xmin = t.profile_xmin
        returning u.xmin
      )
      select count(*), min(done.xmin::text)::xid from done$q$,
        user_sync.profile_diff_sql(), user_sync.profile_update_sql('t'))
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
