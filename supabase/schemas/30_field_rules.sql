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
      when char_length(c.avatar_url) <= 2048 and c.avatar_url ~* '^https?://[^[:space:][:cntrl:]"''<>]+$' then c.avatar_url
      when char_length(c.picture) <= 2048 and c.picture ~* '^https?://[^[:space:][:cntrl:]"''<>]+$' then c.picture
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

-- -----------------------------------------------------------------------------
-- How sync writes a profile from its derived row (a user_sync.expected_profile): one
-- list of the columns, the type's, for every insert and update (the compiled per-user
-- functions below, reconcile's set-based steps). The columns the app owns once edited
-- keep an edit.
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
