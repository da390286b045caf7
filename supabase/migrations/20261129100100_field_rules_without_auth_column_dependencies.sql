-- =============================================================================
-- User Sync for Supabase v0.2.0: no catalog dependency on auth.users columns.
--
-- The field rules move from views over auth.users (which made Supabase Auth's own
-- ALTER COLUMN ... TYPE migrations fail) to query texts run as dynamic SQL by the
-- set-based code, and per-user functions compiled from the same texts. The views go.
-- Current definitions: supabase/schemas/30_field_rules.sql, 50_sync_user.sql,
-- 80_reconcile.sql, 85_status.sql.
-- =============================================================================

drop view if exists user_sync.profile_drift;
drop view if exists user_sync.profile_diff;
drop view if exists user_sync.auth_profiles;

-- -----------------------------------------------------------------------------
-- Field rules: what a profile should be, derived from auth.users (SPEC section 2).
--
-- One home for the rules: user_sync.expected_profiles_sql(), a query text over
-- auth.users. It is a text, not a view, because a view (or a trigger WHEN clause)
-- over auth.users columns would stop Supabase Auth from migrating its own schema
-- (ALTER COLUMN ... TYPE is refused on a column a view reads); a function body or
-- dynamic SQL holds no such dependency. Set-based code (reconcile, status) runs the
-- text as dynamic SQL, planned once per statement; per-user code calls functions
-- compiled from the same text by user_sync.compile_field_rules(), whose plans are
-- cached per session like any static PL/pgSQL.
-- -----------------------------------------------------------------------------

-- The columns of a profile that sync derives from auth.users (one list of them).
create type user_sync.expected_profile as (
  id uuid,
  email text,
  phone text,
  name text,
  avatar_url text,
  role text,
  provider text,
  providers text[],
  is_anonymous boolean,
  email_confirmed_at timestamptz,
  last_sign_in_at timestamptz,
  created_at timestamptz,
  deleted_at timestamptz
);
comment on type user_sync.expected_profile is
  'The profile columns sync derives from auth.users, in the order of user_sync.expected_profiles_sql().';

-- Every rule is an inline expression (no function calls), so that a set-based pass
-- stays one scan of auth.users; the costly cleaning runs only on dirty candidates.
create or replace function user_sync.expected_profiles_sql() returns text
language sql
immutable
set search_path = ''
as $rules$
  select $sql$
  select
    au.id,
    nullif(au.email, '')::text as email,
    nullif(au.phone, '') as phone,
    -- Each candidate is cleaned (control characters out, whitespace trimmed); the
    -- costly translate() runs only when k.dirty finds something to clean, which
    -- gives the same result for a clean candidate at a fraction of the cost.
    nullif(rtrim(left(coalesce(
      case when c.full_name ~ k.dirty then nullif(btrim(translate(c.full_name, k.ctrl, k.sp), k.ws), '') else nullif(c.full_name, '') end,
      case when c.name ~ k.dirty then nullif(btrim(translate(c.name, k.ctrl, k.sp), k.ws), '') else nullif(c.name, '') end,
      case when c.given_family ~ k.dirty then nullif(btrim(translate(c.given_family, k.ctrl, k.sp), k.ws), '') else nullif(c.given_family, '') end,
      case when c.user_name ~ k.dirty then nullif(btrim(translate(c.user_name, k.ctrl, k.sp), k.ws), '') else nullif(c.user_name, '') end,
      case when c.preferred_username ~ k.dirty then nullif(btrim(translate(c.preferred_username, k.ctrl, k.sp), k.ws), '') else nullif(c.preferred_username, '') end,
      case when c.nickname ~ k.dirty then nullif(btrim(translate(c.nickname, k.ctrl, k.sp), k.ws), '') else nullif(c.nickname, '') end,
      case when split_part(au.email, '@', 1) ~ k.dirty then nullif(btrim(translate(split_part(au.email, '@', 1), k.ctrl, k.sp), k.ws), '') else nullif(split_part(au.email, '@', 1), '') end
    ), (select cfg.name_max_length from user_sync.config cfg)), k.ws), '') as name,
    case
      when char_length(c.avatar_url) <= 2048 and c.avatar_url ~* '^https?://[^[:space:][:cntrl:]]+$' then c.avatar_url
      when char_length(c.picture) <= 2048 and c.picture ~* '^https?://[^[:space:][:cntrl:]]+$' then c.picture
    end as avatar_url,
    coalesce(r.role, (select cfg.default_role from user_sync.config cfg), 'user') as role,
    case when jsonb_typeof(au.raw_app_meta_data -> 'provider') = 'string'
      then left(au.raw_app_meta_data ->> 'provider', 200) end as provider,
    -- The string elements of raw_app_meta_data.providers. One or two strings (nearly
    -- every user) are read inline; only other shapes pay for a per-row subquery.
    case
      when jsonb_typeof(au.raw_app_meta_data -> 'providers') is distinct from 'array' then '{}'::text[]
      when jsonb_array_length(au.raw_app_meta_data -> 'providers') = 1
           and jsonb_typeof(au.raw_app_meta_data -> 'providers' -> 0) = 'string'
        then array[left(au.raw_app_meta_data -> 'providers' ->> 0, 200)]
      when jsonb_array_length(au.raw_app_meta_data -> 'providers') = 2
           and jsonb_typeof(au.raw_app_meta_data -> 'providers' -> 0) = 'string'
           and jsonb_typeof(au.raw_app_meta_data -> 'providers' -> 1) = 'string'
        then array[left(au.raw_app_meta_data -> 'providers' ->> 0, 200), left(au.raw_app_meta_data -> 'providers' ->> 1, 200)]
      else array(
        select left(e #>> '{}', 200)
        from jsonb_array_elements(au.raw_app_meta_data -> 'providers') as e
        where jsonb_typeof(e) = 'string'
      )
    end as providers,
    coalesce(au.is_anonymous, false) as is_anonymous,
    au.email_confirmed_at,
    au.last_sign_in_at,
    coalesce(au.created_at, now()) as created_at,
    au.deleted_at
  from auth.users au
  cross join (
    select
      -- tab, LF, CR, VT, FF, NEL, LS, PS become spaces; other control and invisible
      -- formatting characters (C0, DEL, C1, zero-width, bidi overrides, BOM) go.
      E'\t\n\r\u000b\u000c\u0085\u2028\u2029'
      || E'\u0001\u0002\u0003\u0004\u0005\u0006\u0007\u0008\u000e\u000f'
      || E'\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001a\u001b\u001c\u001d\u001e\u001f\u007f'
      || E'\u0080\u0081\u0082\u0083\u0084\u0086\u0087\u0088\u0089\u008a\u008b\u008c\u008d\u008e\u008f'
      || E'\u0090\u0091\u0092\u0093\u0094\u0095\u0096\u0097\u0098\u0099\u009a\u009b\u009c\u009d\u009e\u009f'
      || E'\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2066\u2067\u2068\u2069\ufeff' as ctrl,
      '        '::text as sp,
      E' \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000' as ws,
      -- Matches exactly when translate(x, ctrl, sp) or btrim(x, ws) would change x:
      -- a ctrl character anywhere, or a ws character at either end.
      '[\u0001-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff]'
      || '|^[ \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]|[ \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]$' as dirty
  ) k
  cross join lateral (
    select
      case when jsonb_typeof(au.raw_user_meta_data -> 'full_name') = 'string' then au.raw_user_meta_data ->> 'full_name' end as full_name,
      case when jsonb_typeof(au.raw_user_meta_data -> 'name') = 'string' then au.raw_user_meta_data ->> 'name' end as name,
      concat_ws(' ',
        case when jsonb_typeof(au.raw_user_meta_data -> 'given_name') = 'string' then au.raw_user_meta_data ->> 'given_name' end,
        case when jsonb_typeof(au.raw_user_meta_data -> 'family_name') = 'string' then au.raw_user_meta_data ->> 'family_name' end
      ) as given_family,
      case when jsonb_typeof(au.raw_user_meta_data -> 'user_name') = 'string' then au.raw_user_meta_data ->> 'user_name' end as user_name,
      case when jsonb_typeof(au.raw_user_meta_data -> 'preferred_username') = 'string' then au.raw_user_meta_data ->> 'preferred_username' end as preferred_username,
      case when jsonb_typeof(au.raw_user_meta_data -> 'nickname') = 'string' then au.raw_user_meta_data ->> 'nickname' end as nickname,
      case when jsonb_typeof(au.raw_user_meta_data -> 'avatar_url') = 'string' then btrim(au.raw_user_meta_data ->> 'avatar_url') end as avatar_url,
      case when jsonb_typeof(au.raw_user_meta_data -> 'picture') = 'string' then btrim(au.raw_user_meta_data ->> 'picture') end as picture
  ) c
  left join user_sync.roles r
    on r.role = case when jsonb_typeof(au.raw_app_meta_data -> 'role') = 'string' then au.raw_app_meta_data ->> 'role' end
  $sql$::text;
$rules$;
comment on function user_sync.expected_profiles_sql() is
  'The field rules: a query over auth.users returning one user_sync.expected_profile per auth user. One home for the rules, run as dynamic SQL (no catalog dependency on auth.users columns).';
revoke execute on function user_sync.expected_profiles_sql() from public, anon, authenticated;

-- How profiles differ from what they should be: every auth user and every profile,
-- paired by id (a full join), so that one pass finds the missing, the drifted and
-- the orphaned. name/avatar_url count as drift only while not edited in the app.
-- Filtered by one id, the full join reduces to two index probes.
create or replace function user_sync.profile_diff_sql() returns text
language sql
immutable
set search_path = ''
as $rules$
  select format($sql$
  select
    d.*,
    p.id as profile_id,
    p.xmin as profile_xmin,
    d.id is not null and p.id is null as missing,
    d.id is null as orphaned,
    d.id is not null and p.id is not null and (
      p.email, p.phone, p.role, p.provider, p.providers, p.is_anonymous,
      p.email_confirmed_at, p.last_sign_in_at, p.created_at, p.deleted_at,
      case when p.name_edited_at is null then p.name is distinct from d.name else false end,
      case when p.avatar_url_edited_at is null then p.avatar_url is distinct from d.avatar_url else false end
    ) is distinct from (
      d.email, d.phone, d.role, d.provider, d.providers, d.is_anonymous,
      d.email_confirmed_at, d.last_sign_in_at, d.created_at, d.deleted_at,
      false,
      false
    ) as drifted
  from (%s) d
  full join public.users p on p.id = d.id
  $sql$, user_sync.expected_profiles_sql());
$rules$;
comment on function user_sync.profile_diff_sql() is
  'Query text: every auth user and every profile paired by id, with missing, orphaned (id null, profile_id set) and drifted (differs from the field rules).';
revoke execute on function user_sync.profile_diff_sql() from public, anon, authenticated;

-- The state of one user's profile, as user_sync.profile_state() returns it.
create type user_sync.profile_state as (
  expected user_sync.expected_profile,
  profile_exists boolean,
  drifted boolean,
  profile_xmin xid
);
comment on type user_sync.profile_state is
  'One auth user''s expected profile, whether a profile exists, whether it drifted, and its row version; all null when the auth user does not exist.';

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
end
$compile$;
comment on function user_sync.compile_field_rules() is
  'Compiles user_sync.expected_profile(uuid) and user_sync.profile_state(uuid) from the rule texts. Run after changing user_sync.expected_profiles_sql() or profile_diff_sql().';
revoke execute on function user_sync.compile_field_rules() from public, anon, authenticated;

select user_sync.compile_field_rules();

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
      if found then
        perform user_sync.resolve_errors(p_user_id);
        return 'deleted';
      end if;
      perform user_sync.resolve_errors(p_user_id);
      return 'unchanged';
    elsif not v_state.profile_exists then
      insert into public.users (
        id, email, phone, name, avatar_url, role, provider, providers, is_anonymous,
        email_confirmed_at, last_sign_in_at, created_at, deleted_at, updated_at, synced_at
      ) values (
        d.id, d.email, d.phone, d.name, d.avatar_url, d.role, d.provider, d.providers, d.is_anonymous,
        d.email_confirmed_at, d.last_sign_in_at, d.created_at, d.deleted_at, now(), clock_timestamp()
      )
      on conflict (id) do nothing;
      if found then
        perform user_sync.resolve_errors(p_user_id);
        return 'inserted';
      end if;
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
      perform user_sync.resolve_errors(p_user_id);
      return 'updated';
    else
      perform user_sync.resolve_errors(p_user_id);
      return 'unchanged';
    end if;
  end loop;
  return 'unchanged';
end
$$;
comment on function user_sync.sync_user(uuid) is
  'Makes the profile of one user match auth.users. Returns inserted, updated, unchanged or deleted (auth user gone). Resolves that user''s open errors.';
revoke execute on function user_sync.sync_user(uuid) from public, anon, authenticated;
grant execute on function user_sync.sync_user(uuid) to service_role;


-- -----------------------------------------------------------------------------
-- user_sync.reconcile: bring the whole table in line, set-based.
-- Inserts missing profiles, updates drifted ones, removes orphans. A row changed
-- concurrently (xmin moved) is left to the writer that changed it. Overlapping runs:
-- the second returns {"skipped": true} at once. A dry run changes no profile and
-- reports what it would do. If the set-based pass fails (e.g. a bad row), each
-- affected user is synced alone and failures are recorded per user.
-- -----------------------------------------------------------------------------
create or replace function user_sync.reconcile(
  p_dry_run boolean default false,
  p_source text default 'manual'
) returns jsonb
language plpgsql
security definer
set search_path = ''
-- Whole-table passes must not turn into nested loops when statistics are stale (a
-- bulk import not yet analyzed): a nested-loop anti-join that probes public.users
-- while the same statement inserts into it is quadratic. Hash joins read each side once.
set enable_nestloop = off
set enable_mergejoin = off
-- JIT compiling the field rules costs more than it saves here (1M users: name
-- derivation 1.4 s without, 2.6 s with; 0.6-4 s of compile time per bulk statement).
set jit = off
as $$
declare
  v_started timestamptz := clock_timestamp();
  v_sync_ts timestamptz;
  v_run_id bigint;
  v_auth_users bigint;
  v_profiles bigint;
  v_inserted bigint := 0;
  v_updated bigint := 0;
  v_deleted bigint := 0;
  v_errors integer := 0;
  v_n bigint;
  v_todo bigint;
  v_state text;
  v_message text;
  v_status text;
  v_missing uuid[];
  v_drifted uuid[];
  v_orphaned uuid[];
  v_open_errors uuid[];
  v_any boolean;
  -- Above this many missing profiles they are inserted in one pass over auth.users.
  v_bulk constant integer := 5000;
  v_cluster text;
  v_basis text;
  v_horizon xid8;
  v_prev xid8;
  v_prev_basis text;
  v_age bigint;
  v_recent uuid[];
  v_complete boolean := true;
  v_user_id uuid;
  -- The field rules as query texts (user_sync.expected_profiles_sql / profile_diff_sql):
  -- run as dynamic SQL, so nothing of ours depends on auth.users columns.
  v_expected_sql constant text := user_sync.expected_profiles_sql();
  v_diff_sql constant text := user_sync.profile_diff_sql();
begin
  if p_dry_run is null then
    raise exception using errcode = '22004', message = 'user_sync.reconcile: p_dry_run must not be null';
  end if;
  if p_source is null or p_source !~ '^[a-z][a-z0-9_-]{0,39}$' then
    raise exception using errcode = '22023',
      message = format('user_sync.reconcile: invalid p_source %L', p_source),
      hint = 'Use lower-case letters, digits, - and _ (at most 40), e.g. cron, manual, api.';
  end if;

  -- One reconcile at a time, cluster-wide; held until the transaction ends.
  if not pg_try_advisory_xact_lock(hashtextextended('user_sync.reconcile', 0)) then
    insert into user_sync.runs (source, dry_run, status, finished_at, duration_ms)
    values (p_source, p_dry_run, 'skipped', clock_timestamp(), 0)
    returning id into v_run_id;
    return jsonb_build_object(
      'skipped', true, 'run_id', v_run_id, 'source', p_source, 'dry_run', p_dry_run,
      'reason', 'another reconcile is in progress');
  end if;

  insert into user_sync.runs (source, dry_run) values (p_source, p_dry_run) returning id into v_run_id;

  begin
    -- What profiles are derived from besides the rows themselves. A change to any of
    -- it (a new field rule, config, a role, a rewritten table, another cluster after a
    -- restore) makes the next run look at every row again.
    begin
      select c.system_identifier::text into v_cluster from pg_catalog.pg_control_system() c;
    exception when others then
      v_cluster := '';
    end;
    v_basis := md5(concat_ws('|', v_cluster,
      pg_relation_filenode('auth.users'::regclass), pg_relation_filenode('public.users'::regclass),
      v_diff_sql,
      (select string_agg(c::text, ',') from user_sync.config c),
      (select string_agg(ro.role, ',' order by ro.role) from user_sync.roles ro)));
    -- Every transaction that wrote a row older than this had ended before the pass
    -- below started, so the pass sees all such rows as they are.
    v_horizon := pg_snapshot_xmin(pg_current_snapshot());

    -- The last complete, successful run left its horizon: rows written before it were
    -- in sync then and, unchanged since (same row version, same basis), still are.
    select ru.horizon, ru.basis into v_prev, v_prev_basis
      from user_sync.runs ru where ru.horizon is not null order by ru.id desc limit 1;
    if v_prev is not null and v_prev_basis = v_basis and v_prev <= v_horizon then
      -- age(xmin) <= v_age  <=>  the row version was written at or after v_prev.
      v_age := pg_current_xact_id()::text::bigint - v_prev::text::bigint;
      if v_age > 1000000000 then
        v_prev := null; -- too long ago for 32-bit transaction ids: look at everything
      end if;
    else
      v_prev := null;
    end if;

    if v_prev is null then
      -- One pass over both tables finds what to do: the ids of missing, drifted and
      -- orphaned profiles (empty when all is in sync), and how many rows each side has.
      execute format($q$
        select count(x.id), count(x.profile_id),
               coalesce(array_agg(x.id) filter (where x.missing), '{}'),
               coalesce(array_agg(x.id) filter (where x.drifted), '{}'),
               coalesce(array_agg(x.profile_id) filter (where x.orphaned), '{}')
          from (%s) x$q$, v_diff_sql)
        into v_auth_users, v_profiles, v_missing, v_drifted, v_orphaned;
    else
      -- The same, deriving profiles only for rows written since the last horizon (and
      -- for auth users without created_at, whose derived created_at is now()): one
      -- pass over ids and row versions, then the field rules for the few.
      select count(a.id), count(p.id),
             coalesce(array_agg(a.id) filter (where p.id is null), '{}'),
             coalesce(array_agg(a.id) filter (where a.id is not null and p.id is not null and (a.recent or p.recent)), '{}'),
             coalesce(array_agg(p.id) filter (where a.id is null), '{}')
        into v_auth_users, v_profiles, v_missing, v_recent, v_orphaned
        from (select au.id, age(au.xmin) <= v_age or au.created_at is null as recent from auth.users au) a
        full join (select u.id, age(u.xmin) <= v_age as recent from public.users u) p on p.id = a.id;
      v_drifted := '{}';
      if cardinality(v_recent) > greatest(v_bulk, v_auth_users / 4) then
        -- Most rows are new (e.g. right after a first sync): one pass is cheaper.
        execute format($q$select coalesce(array_agg(x.id) filter (where x.drifted), '{}') from (%s) x$q$, v_diff_sql)
          into v_drifted;
      elsif cardinality(v_recent) > 0 then
        execute format($q$
          select coalesce(array_agg(x.id), '{}') from (%s) x
          where x.id = any($1) and x.profile_id = any($1) and x.drifted$q$, v_diff_sql)
          into v_drifted using v_recent;
      end if;
    end if;

    if p_dry_run then
      v_inserted := cardinality(v_missing);
      v_updated := cardinality(v_drifted);
      v_deleted := cardinality(v_orphaned);
    elsif cardinality(v_missing) + cardinality(v_drifted) + cardinality(v_orphaned) > 0 then
      begin
        -- Each step re-reads the users it works on (their state may have moved since
        -- the pass above), by id: index probes on both tables, never a nested loop.
        v_sync_ts := clock_timestamp();
        -- Missing profiles. A profile inserted meanwhile by the trigger wins.
        if cardinality(v_missing) > v_bulk then
          -- Many (a first sync): one pass over auth.users beats a probe per id.
          execute format($q$
            insert into public.users (
              id, email, phone, name, avatar_url, role, provider, providers, is_anonymous,
              email_confirmed_at, last_sign_in_at, created_at, deleted_at, updated_at, synced_at
            )
            select
              pd.id, pd.email, pd.phone, pd.name, pd.avatar_url, pd.role, pd.provider, pd.providers, pd.is_anonymous,
              pd.email_confirmed_at, pd.last_sign_in_at, pd.created_at, pd.deleted_at, now(), $1
            from (%s) pd
            where pd.id is not null and pd.missing
            on conflict (id) do nothing$q$, v_diff_sql)
            using v_sync_ts;
          get diagnostics v_inserted = row_count;
        elsif cardinality(v_missing) > 0 then
          execute format($q$
            insert into public.users (
              id, email, phone, name, avatar_url, role, provider, providers, is_anonymous,
              email_confirmed_at, last_sign_in_at, created_at, deleted_at, updated_at, synced_at
            )
            select
              d.id, d.email, d.phone, d.name, d.avatar_url, d.role, d.provider, d.providers, d.is_anonymous,
              d.email_confirmed_at, d.last_sign_in_at, d.created_at, d.deleted_at, now(), $1
            from (%s) d
            where d.id = any($2)
            on conflict (id) do nothing$q$, v_expected_sql)
            using v_sync_ts, v_missing;
          get diagnostics v_inserted = row_count;
        end if;

        -- Drifted profiles; rows changed since they were read are skipped (xmin).
        for v_pass in 1..case when cardinality(v_drifted) > 0 then 3 else 0 end loop
          v_sync_ts := clock_timestamp();
          -- $1: the drifted ids, $2: most rows drifted (one pass), $3: the sync stamp.
          execute format($q$
          with todo as materialized (
            select x.* from (%s) x
            where x.drifted
              and ($2 -- most rows: one pass
                   or (x.id = any($1) and x.profile_id = any($1)))
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
              synced_at = $3
            from todo t
            where ($2 or u.id = any($1))
              and u.id = t.id and u.xmin = t.profile_xmin
            returning 1
          )
          select (select count(*) from todo), (select count(*) from done)$q$, v_diff_sql)
          into v_todo, v_n
          using v_drifted, cardinality(v_drifted) > greatest(v_bulk, v_auth_users / 4), v_sync_ts;
          v_updated := v_updated + v_n;
          v_complete := v_n = v_todo;
          exit when v_complete;
        end loop;

        -- Orphans: profiles whose auth user is gone (only possible when the
        -- foreign key was bypassed, e.g. by replication or a restore).
        if cardinality(v_orphaned) > 0 then
          delete from public.users u
          where u.id = any(v_orphaned)
            and not exists (select 1 from auth.users au where au.id = any(v_orphaned) and au.id = u.id);
          get diagnostics v_deleted = row_count;
        end if;
        v_profiles := v_profiles + v_inserted - v_deleted;
      exception when others then
        -- The set-based pass is rolled back as a whole; sync each affected user alone.
        get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
        raise warning 'user_sync.reconcile: set-based pass failed (%: %); syncing users one by one', v_state, v_message;
        v_inserted := 0; v_updated := 0; v_deleted := 0;
        for v_user_id in execute format($q$
          select pd.id from (%s) pd where pd.id is not null and (pd.missing or pd.drifted)
          union all
          select u.id from public.users u where not exists (select 1 from auth.users au where au.id = u.id)$q$, v_diff_sql)
        loop
          begin
            case user_sync.sync_user(v_user_id)
              when 'inserted' then v_inserted := v_inserted + 1;
              when 'updated' then v_updated := v_updated + 1;
              when 'deleted' then v_deleted := v_deleted + 1;
              else null;
            end case;
          exception when others then
            get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
            perform user_sync.record_error(v_user_id, 'reconcile', v_state, v_message, null, v_run_id);
            v_errors := v_errors + 1;
          end;
        end loop;
        select count(*) into v_auth_users from auth.users;
        select count(*) into v_profiles from public.users;
        v_complete := v_errors = 0;
      end;
    end if;

    if not p_dry_run then
      -- Open errors of users that are now in sync (or gone) are resolved; those
      -- users are looked up by id.
      select coalesce(array_agg(distinct e.user_id) filter (where e.user_id is not null), '{}'), count(*) > 0
        into v_open_errors, v_any
        from user_sync.errors e
        where e.resolved_at is null and e.run_id is distinct from v_run_id;
      if v_any then
        execute format($q$
          update user_sync.errors e set resolved_at = now()
          where e.resolved_at is null
            and e.run_id is distinct from $2
            and (e.user_id is null or e.user_id = any($1))
            and not exists (
              select 1 from (%s) x
              where x.id = any($1) and x.id = e.user_id and (x.missing or x.drifted)
            )$q$, v_diff_sql)
          using v_open_errors, v_run_id;
      end if;
    end if;

    v_status := case when v_errors > 0 then 'errors' else 'ok' end;
  exception when others then
    get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
    v_status := 'failed';
    v_inserted := 0; v_updated := 0; v_deleted := 0;
    v_errors := v_errors + 1;
    raise warning 'user_sync.reconcile failed (%: %)', v_state, v_message;
  end;

  update user_sync.runs set
    status = v_status,
    finished_at = clock_timestamp(),
    duration_ms = (extract(epoch from clock_timestamp() - v_started) * 1000)::integer,
    auth_users = v_auth_users,
    profiles = v_profiles,
    inserted = v_inserted,
    updated = v_updated,
    deleted = v_deleted,
    unchanged = greatest(coalesce(v_auth_users, 0) - v_inserted - v_updated, 0),
    errors = v_errors,
    error = case when v_status = 'failed' then format('%s: %s', v_state, v_message) end,
    horizon = case when not p_dry_run and v_status = 'ok' and v_complete then v_horizon end,
    basis = v_basis
  where id = v_run_id;

  return (
    select jsonb_build_object(
      'run_id', ru.id, 'source', ru.source, 'dry_run', ru.dry_run, 'skipped', false, 'status', ru.status,
      'auth_users', ru.auth_users, 'profiles', ru.profiles,
      'inserted', ru.inserted, 'updated', ru.updated, 'deleted', ru.deleted, 'unchanged', ru.unchanged,
      'errors', ru.errors, 'error', ru.error, 'duration_ms', ru.duration_ms)
    from user_sync.runs ru where ru.id = v_run_id
  );
end
$$;
comment on function user_sync.reconcile(boolean, text) is
  'Brings public.users in line with auth.users (insert missing, update drifted, remove orphans), set-based. Returns the run report; {"skipped": true} when another run is in progress.';
revoke execute on function user_sync.reconcile(boolean, text) from public, anon, authenticated;
grant execute on function user_sync.reconcile(boolean, text) to service_role;


-- -----------------------------------------------------------------------------
-- user_sync.status: counts for dashboards and the sync-all GET endpoint. The counts
-- come from one pass over both tables with the field rules (dynamic SQL: see
-- 30_field_rules.sql).
-- -----------------------------------------------------------------------------
create or replace function user_sync.status() returns jsonb
language plpgsql
stable
security definer
set search_path = ''
set jit = off
as $$
declare
  v_counts jsonb;
begin
  execute format($q$
    select jsonb_build_object(
      'auth_users', count(x.id), 'profiles', count(x.profile_id),
      'missing', count(*) filter (where x.missing), 'orphaned', count(*) filter (where x.orphaned),
      'drifted', count(*) filter (where x.drifted))
    from (%s) x$q$, user_sync.profile_diff_sql())
    into v_counts;
  return v_counts || jsonb_build_object(
    'open_errors', (select count(*) from user_sync.errors e where e.resolved_at is null),
    'health', user_sync.health(),
    'version', user_sync.version(),
    'last_run', (
      select jsonb_build_object(
        'run_id', r.id, 'source', r.source, 'dry_run', r.dry_run, 'status', r.status,
        'started_at', r.started_at, 'finished_at', r.finished_at, 'duration_ms', r.duration_ms,
        'inserted', r.inserted, 'updated', r.updated, 'deleted', r.deleted, 'errors', r.errors)
      from user_sync.runs r order by r.id desc limit 1
    )
  );
end
$$;
comment on function user_sync.status() is
  'Sync health: auth_users, profiles, missing, orphaned, drifted, open_errors, health {ok, problems}, version, last_run.';
revoke execute on function user_sync.status() from public, anon, authenticated;
grant execute on function user_sync.status() to service_role;

