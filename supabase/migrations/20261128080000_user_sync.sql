-- =============================================================================
-- User Sync for Supabase
-- Keeps public.users an exact, self-healing, secure mirror of auth.users.
--
-- One home for all sync logic: the views user_sync.auth_profiles (what a profile
-- should be) and user_sync.profile_drift (how it differs), used by the trigger on
-- auth.users, user_sync.sync_user(), user_sync.reconcile() and user_sync.status().
--
-- Runs as postgres (not a superuser on Supabase). Every function pins
-- search_path = '' and qualifies every name: the auth trigger runs as
-- supabase_auth_admin, whose search_path is `auth`.
-- =============================================================================

create extension if not exists pg_cron with schema pg_catalog;
create extension if not exists pg_net with schema extensions;

-- -----------------------------------------------------------------------------
-- Schema user_sync: private, never exposed through the Data API
-- -----------------------------------------------------------------------------
create schema if not exists user_sync;
comment on schema user_sync is
  'User Sync for Supabase: sync logic, run log and error log. Do not expose through the Data API.';
revoke all on schema user_sync from public;
-- authenticated needs only to resolve user_sync.is_admin() inside RLS policies.
grant usage on schema user_sync to authenticated, service_role;

-- -----------------------------------------------------------------------------
-- Roles and configuration
-- -----------------------------------------------------------------------------
create table if not exists user_sync.roles (
  role text primary key check (role ~ '^[a-z][a-z0-9_]{0,39}$'),
  description text not null default ''
);
comment on table user_sync.roles is
  'Known application roles. raw_app_meta_data.role is copied into public.users.role only when it names one of these.';
insert into user_sync.roles (role, description) values
  ('user', 'Default role of every profile'),
  ('admin', 'Reads every profile and may change roles')
on conflict (role) do nothing;
revoke all on user_sync.roles from public, anon, authenticated;
grant select on user_sync.roles to authenticated, service_role;

create table if not exists user_sync.config (
  id boolean primary key default true check (id),
  default_role text not null default 'user' references user_sync.roles (role),
  name_max_length integer not null default 200 check (name_max_length between 1 and 1000)
);
comment on table user_sync.config is 'Single-row configuration of User Sync.';
comment on column user_sync.config.default_role is 'Role given when raw_app_meta_data names no known role.';
comment on column user_sync.config.name_max_length is 'Names derived from metadata are cut to this many characters.';
insert into user_sync.config (id) values (true) on conflict (id) do nothing;
revoke all on user_sync.config from public, anon, authenticated;
grant select on user_sync.config to service_role;

-- -----------------------------------------------------------------------------
-- public.users: one profile per auth user
-- -----------------------------------------------------------------------------
create table if not exists public.users (
  id uuid primary key references auth.users (id) on delete cascade,
  email text,
  phone text,
  name text,
  avatar_url text,
  role text not null default 'user' references user_sync.roles (role) on update cascade,
  provider text,
  providers text[] not null default '{}',
  is_anonymous boolean not null default false,
  email_confirmed_at timestamptz,
  last_sign_in_at timestamptz,
  created_at timestamptz not null default now(),
  deleted_at timestamptz,
  updated_at timestamptz not null default now(),
  synced_at timestamptz not null default now(),
  name_edited_at timestamptz,
  avatar_url_edited_at timestamptz,
  constraint users_name_clean check (
    name is null or (char_length(name) between 1 and 1000 and name !~ '[[:cntrl:]]')
  ),
  constraint users_avatar_url_http check (
    avatar_url is null or (char_length(avatar_url) <= 2048 and avatar_url ~* '^https?://[^[:space:][:cntrl:]]+$')
  )
);
comment on table public.users is
  'Application profile of each Supabase Auth user, kept in sync with auth.users by User Sync. Auth-owned columns always mirror auth.users; name and avatar_url belong to the user once edited.';
comment on column public.users.id is 'The auth user (auth.users.id); the profile is removed when the auth user is hard-deleted.';
comment on column public.users.email is 'Mirror of auth.users.email (null for phone-only and anonymous users).';
comment on column public.users.phone is 'Mirror of auth.users.phone.';
comment on column public.users.name is
  'Display name. Follows raw_user_meta_data (full_name, name, given_name + family_name, user_name, preferred_username, nickname, else the email''s local part) until edited in the app.';
comment on column public.users.avatar_url is
  'Avatar URL (http/https only). Follows raw_user_meta_data.avatar_url or .picture until edited in the app.';
comment on column public.users.role is
  'Application role: raw_app_meta_data.role when it names a row of user_sync.roles, else user_sync.config.default_role. Admins may change it; the change is written back to raw_app_meta_data.';
comment on column public.users.provider is 'Mirror of raw_app_meta_data.provider (email, phone, google, github, sso:..., anonymous).';
comment on column public.users.providers is 'Mirror of raw_app_meta_data.providers.';
comment on column public.users.is_anonymous is 'Mirror of auth.users.is_anonymous.';
comment on column public.users.email_confirmed_at is 'Mirror of auth.users.email_confirmed_at.';
comment on column public.users.last_sign_in_at is 'Mirror of auth.users.last_sign_in_at.';
comment on column public.users.created_at is 'Mirror of auth.users.created_at.';
comment on column public.users.deleted_at is 'Mirror of auth.users.deleted_at: set when the auth user is soft-deleted; such profiles are hidden from non-admins.';
comment on column public.users.updated_at is 'Last change of this row (by the app or by sync).';
comment on column public.users.synced_at is 'Last write by User Sync.';
comment on column public.users.name_edited_at is 'When name was last edited in the app; while set, sync never overwrites name. Set to null to follow metadata again.';
comment on column public.users.avatar_url_edited_at is 'When avatar_url was last edited in the app; while set, sync never overwrites avatar_url.';

create index if not exists users_admin_idx on public.users (id) where role = 'admin';

-- -----------------------------------------------------------------------------
-- What a profile should be: derived from auth.users, one row per auth user.
-- All field rules live here, as inline expressions (no function calls) so that
-- set-based reconcile stays one pass over auth.users.
-- -----------------------------------------------------------------------------
create or replace view user_sync.auth_profiles as
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
  on r.role = case when jsonb_typeof(au.raw_app_meta_data -> 'role') = 'string' then au.raw_app_meta_data ->> 'role' end;
comment on view user_sync.auth_profiles is
  'What each profile should be, derived from auth.users by the field rules (one home for them).';
revoke all on user_sync.auth_profiles from public, anon, authenticated, service_role;

-- -----------------------------------------------------------------------------
-- How profiles differ from what they should be: every auth user and every profile,
-- paired by id (a full join), so that one pass finds the missing, the drifted and
-- the orphaned. name/avatar_url count as drift only while not edited in the app.
-- -----------------------------------------------------------------------------
create or replace view user_sync.profile_diff as
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
from user_sync.auth_profiles d
full join public.users p on p.id = d.id;
comment on view user_sync.profile_diff is
  'Every auth user and every profile, paired by id: missing (no profile), orphaned (no auth user; id is null, profile_id is set), drifted (differs from user_sync.auth_profiles).';
revoke all on user_sync.profile_diff from public, anon, authenticated, service_role;

-- One row per auth user (the full join above reduced to a left join by the filter on
-- id, so a lookup of one user is two index probes).
create or replace view user_sync.profile_drift as
select
  x.id, x.email, x.phone, x.name, x.avatar_url, x.role, x.provider, x.providers, x.is_anonymous,
  x.email_confirmed_at, x.last_sign_in_at, x.created_at, x.deleted_at,
  x.missing, x.drifted, x.profile_xmin
from user_sync.profile_diff x
where x.id is not null;
comment on view user_sync.profile_drift is
  'Each auth user with its profile''s state: missing, drifted (differs from user_sync.auth_profiles), or neither.';
revoke all on user_sync.profile_drift from public, anon, authenticated, service_role;

-- -----------------------------------------------------------------------------
-- Run log and error log
-- -----------------------------------------------------------------------------
create table if not exists user_sync.runs (
  id bigint generated always as identity primary key,
  source text not null,
  dry_run boolean not null default false,
  status text not null default 'running' check (status in ('running', 'ok', 'errors', 'failed', 'skipped')),
  started_at timestamptz not null default clock_timestamp(),
  finished_at timestamptz,
  duration_ms integer,
  auth_users bigint,
  profiles bigint,
  inserted bigint not null default 0,
  updated bigint not null default 0,
  deleted bigint not null default 0,
  unchanged bigint not null default 0,
  errors integer not null default 0,
  error text,
  horizon xid8,
  basis text
);
comment on table user_sync.runs is 'One row per user_sync.reconcile() call (including dry runs and skipped overlapping calls).';
comment on column user_sync.runs.source is 'Who asked: cron, manual, api, admin, ...';
comment on column user_sync.runs.status is 'ok, errors (some users could not be synced, see user_sync.errors), failed (nothing applied), skipped (another run was in progress).';
comment on column user_sync.runs.horizon is
  'Set by a complete, successful (not dry) run: every auth user and profile whose row version is older than this transaction id was in sync when the run looked. The next run re-derives only rows written since (see reconcile).';
comment on column user_sync.runs.basis is
  'Fingerprint of what profiles are derived from besides the rows (field-rule views, config, roles, the tables'' storage, the cluster). A horizon is only used under the same basis.';
revoke all on user_sync.runs from public, anon, authenticated;
grant select on user_sync.runs to service_role;

create table if not exists user_sync.errors (
  id bigint generated always as identity primary key,
  user_id uuid,
  source text not null,
  run_id bigint references user_sync.runs (id) on delete set null,
  sqlstate text,
  message text not null,
  detail text,
  occurred_at timestamptz not null default clock_timestamp(),
  resolved_at timestamptz
);
comment on table user_sync.errors is
  'One row per failed sync of a user. Resolved (resolved_at set) when a later sync of that user succeeds.';
comment on column user_sync.errors.source is 'Where the sync failed: trigger, reconcile, sync_user, create-user, auth-webhook.';
create index if not exists errors_open_user_idx on user_sync.errors (user_id) where resolved_at is null;
create index if not exists errors_run_id_idx on user_sync.errors (run_id);
revoke all on user_sync.errors from public, anon, authenticated;
grant select on user_sync.errors to service_role;

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
exception when others then
  raise warning 'user_sync: could not record the failed sync of user % (%): %', p_user_id, p_message, sqlerrm;
end
$$;
comment on function user_sync.record_error(uuid, text, text, text, text, bigint) is
  'Records a failed sync of one user in user_sync.errors; swallows its own failure (with a WARNING).';
revoke execute on function user_sync.record_error(uuid, text, text, text, text, bigint) from public, anon, authenticated;

-- -----------------------------------------------------------------------------
-- user_sync.resolve_errors: mark a user's open errors resolved after a good sync;
-- like record_error it never raises.
-- -----------------------------------------------------------------------------
create or replace function user_sync.resolve_errors(p_user_id uuid) returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  update user_sync.errors set resolved_at = now()
  where user_id = p_user_id and resolved_at is null;
exception when others then
  -- A broken error log must never turn a good sync into a failed one.
  raise warning 'user_sync: could not resolve the errors of user %: %', p_user_id, sqlerrm;
end
$$;
comment on function user_sync.resolve_errors(uuid) is 'Marks the open errors of one user resolved (called after a successful sync of that user).';
revoke execute on function user_sync.resolve_errors(uuid) from public, anon, authenticated;

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
  d record;
begin
  if p_user_id is null then
    raise exception using errcode = '22004', message = 'user_sync.sync_user: p_user_id must not be null';
  end if;

  -- Two rounds at most: an insert that loses a race with a concurrent insert of the
  -- same profile turns into an update on the second round.
  for v_round in 1..2 loop
    if exists (select 1 from public.users u where u.id = p_user_id) then
      select * into d from user_sync.profile_drift pd where pd.id = p_user_id;
    else
      -- No profile yet (a sign-up): it is missing, so only the derived row is needed,
      -- not the comparison (half the cost of the profile_drift lookup).
      select ap.*, true as missing, false as drifted into d from user_sync.auth_profiles ap where ap.id = p_user_id;
    end if;

    if not found then
      delete from public.users u where u.id = p_user_id;
      if found then
        perform user_sync.resolve_errors(p_user_id);
        return 'deleted';
      end if;
      perform user_sync.resolve_errors(p_user_id);
      return 'unchanged';
    elsif d.missing then
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
    elsif d.drifted then
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

-- -----------------------------------------------------------------------------
-- user_sync.is_admin: is the caller (auth.uid()) an admin? For RLS policies.
-- Not security definer: it reads user_sync.caller_is_admin, a view owned by the
-- table owner (which RLS does not apply to), so policies on public.users can ask
-- without recursion and without a security-definer function open to authenticated.
-- -----------------------------------------------------------------------------
create or replace view user_sync.caller_is_admin as
select exists (
  select 1 from public.users u
  where u.id = (select auth.uid()) and u.role = 'admin' and u.deleted_at is null
) as is_admin;
comment on view user_sync.caller_is_admin is 'Whether the calling user (auth.uid()) has role admin. Reveals nothing about other users.';
revoke all on user_sync.caller_is_admin from public, anon;
grant select on user_sync.caller_is_admin to authenticated, service_role;

create or replace function user_sync.is_admin() returns boolean
language sql
stable
security invoker
set search_path = ''
as $$
  select coalesce((select c.is_admin from user_sync.caller_is_admin c), false);
$$;
comment on function user_sync.is_admin() is 'True when the calling user''s profile has role admin (and is not soft-deleted).';
revoke execute on function user_sync.is_admin() from public, anon;
grant execute on function user_sync.is_admin() to authenticated, service_role;

-- -----------------------------------------------------------------------------
-- Guard on public.users for writes that are not sync writes (the app, the Data
-- API, the SQL editor). Sync writes are recognised by a new synced_at (sync stamps
-- it with clock_timestamp(); authenticated cannot write it). Only admins (or
-- trusted server roles) change roles; an app edit of name/avatar_url is remembered
-- so that sync never overwrites it. Security invoker: current_user is the caller.
-- -----------------------------------------------------------------------------
create or replace function user_sync.guard_profile_write() returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  if new.role is distinct from old.role
     and current_user in ('anon', 'authenticated')
     and not user_sync.is_admin() then
    raise exception using errcode = '42501', message = 'only admins can change roles',
      hint = 'Roles are changed by an admin, or by the service role through app_metadata.';
  end if;
  if new.name is distinct from old.name then
    new.name_edited_at := now();
  end if;
  if new.avatar_url is distinct from old.avatar_url then
    new.avatar_url_edited_at := now();
  end if;
  if new is distinct from old then
    new.updated_at := now();
  end if;
  return new;
end
$$;
comment on function user_sync.guard_profile_write() is
  'BEFORE UPDATE trigger on public.users for non-sync writes: role changes by admins only; remembers app edits of name/avatar_url.';
revoke execute on function user_sync.guard_profile_write() from public, anon;

create or replace trigger user_sync_guard_profile_write
  before update on public.users
  for each row
  when (current_user in ('anon', 'authenticated') or new.synced_at is not distinct from old.synced_at)
  execute function user_sync.guard_profile_write();

-- -----------------------------------------------------------------------------
-- Role changes made in the app are written back to raw_app_meta_data, so Auth
-- stays the single source of truth: the next sync keeps the role, and new JWTs
-- carry it in app_metadata.
-- -----------------------------------------------------------------------------
create or replace function user_sync.write_back_role() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  update auth.users au set
    raw_app_meta_data =
      case when jsonb_typeof(au.raw_app_meta_data) = 'object' then au.raw_app_meta_data else '{}'::jsonb end
      || jsonb_build_object('role', new.role),
    updated_at = now()
  where au.id = new.id;
  return null;
end
$$;
comment on function user_sync.write_back_role() is
  'AFTER UPDATE OF role trigger on public.users (app edits only): copies the new role into auth.users.raw_app_meta_data.';
revoke execute on function user_sync.write_back_role() from public, anon, authenticated;

create or replace trigger user_sync_write_back_role
  after update of role on public.users
  for each row
  when (old.role is distinct from new.role and new.synced_at is not distinct from old.synced_at)
  execute function user_sync.write_back_role();

-- -----------------------------------------------------------------------------
-- Row level security and grants on public.users.
-- anon: nothing. authenticated: own row (not soft-deleted), or all rows for
-- admins; updates limited to name, avatar_url and (admins only, enforced by the
-- guard) role. No inserts or deletes: profiles are created and removed by sync.
-- -----------------------------------------------------------------------------
alter table public.users enable row level security;

revoke all on public.users from public, anon, authenticated, service_role;
grant select on public.users to authenticated;
grant update (name, avatar_url, role) on public.users to authenticated;
grant select, insert, update, delete on public.users to service_role;

drop policy if exists "users: own profile or admin can read" on public.users;
create policy "users: own profile or admin can read" on public.users
  for select to authenticated
  using (
    (id = (select auth.uid()) and deleted_at is null)
    or (select user_sync.is_admin())
  );

drop policy if exists "users: own profile or admin can update" on public.users;
create policy "users: own profile or admin can update" on public.users
  for update to authenticated
  using (
    (id = (select auth.uid()) and deleted_at is null)
    or (select user_sync.is_admin())
  )
  with check (
    id = (select auth.uid())
    or (select user_sync.is_admin())
  );

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
  r record;
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
      pg_get_viewdef('user_sync.auth_profiles'::regclass), pg_get_viewdef('user_sync.profile_diff'::regclass),
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
      select count(x.id), count(x.profile_id),
             coalesce(array_agg(x.id) filter (where x.missing), '{}'),
             coalesce(array_agg(x.id) filter (where x.drifted), '{}'),
             coalesce(array_agg(x.profile_id) filter (where x.orphaned), '{}')
        into v_auth_users, v_profiles, v_missing, v_drifted, v_orphaned
        from user_sync.profile_diff x;
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
        select coalesce(array_agg(x.id) filter (where x.drifted), '{}') into v_drifted
          from user_sync.profile_diff x;
      elsif cardinality(v_recent) > 0 then
        select coalesce(array_agg(x.id), '{}') into v_drifted
          from user_sync.profile_diff x
          where x.id = any(v_recent) and x.profile_id = any(v_recent) and x.drifted;
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
          insert into public.users (
            id, email, phone, name, avatar_url, role, provider, providers, is_anonymous,
            email_confirmed_at, last_sign_in_at, created_at, deleted_at, updated_at, synced_at
          )
          select
            pd.id, pd.email, pd.phone, pd.name, pd.avatar_url, pd.role, pd.provider, pd.providers, pd.is_anonymous,
            pd.email_confirmed_at, pd.last_sign_in_at, pd.created_at, pd.deleted_at, now(), v_sync_ts
          from user_sync.profile_drift pd
          where pd.missing
          on conflict (id) do nothing;
          get diagnostics v_inserted = row_count;
        elsif cardinality(v_missing) > 0 then
          insert into public.users (
            id, email, phone, name, avatar_url, role, provider, providers, is_anonymous,
            email_confirmed_at, last_sign_in_at, created_at, deleted_at, updated_at, synced_at
          )
          select
            d.id, d.email, d.phone, d.name, d.avatar_url, d.role, d.provider, d.providers, d.is_anonymous,
            d.email_confirmed_at, d.last_sign_in_at, d.created_at, d.deleted_at, now(), v_sync_ts
          from user_sync.auth_profiles d
          where d.id = any(v_missing)
          on conflict (id) do nothing;
          get diagnostics v_inserted = row_count;
        end if;

        -- Drifted profiles; rows changed since they were read are skipped (xmin).
        for v_pass in 1..case when cardinality(v_drifted) > 0 then 3 else 0 end loop
          v_sync_ts := clock_timestamp();
          with todo as materialized (
            select x.* from user_sync.profile_diff x
            where x.drifted
              and (cardinality(v_drifted) > greatest(v_bulk, v_auth_users / 4) -- most rows: one pass
                   or (x.id = any(v_drifted) and x.profile_id = any(v_drifted)))
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
              synced_at = v_sync_ts
            from todo t
            where (cardinality(v_drifted) > greatest(v_bulk, v_auth_users / 4) or u.id = any(v_drifted))
              and u.id = t.id and u.xmin = t.profile_xmin
            returning 1
          )
          select (select count(*) from todo), (select count(*) from done) into v_todo, v_n;
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
        for r in
          select pd.id from user_sync.profile_drift pd where pd.missing or pd.drifted
          union all
          select u.id from public.users u where not exists (select 1 from auth.users au where au.id = u.id)
        loop
          begin
            case user_sync.sync_user(r.id)
              when 'inserted' then v_inserted := v_inserted + 1;
              when 'updated' then v_updated := v_updated + 1;
              when 'deleted' then v_deleted := v_deleted + 1;
              else null;
            end case;
          exception when others then
            get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
            perform user_sync.record_error(r.id, 'reconcile', v_state, v_message, null, v_run_id);
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
        update user_sync.errors e set resolved_at = now()
        where e.resolved_at is null
          and e.run_id is distinct from v_run_id
          and (e.user_id is null or e.user_id = any(v_open_errors))
          and not exists (
            select 1 from user_sync.profile_diff x
            where x.id = any(v_open_errors) and x.id = e.user_id and (x.missing or x.drifted)
          );
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
-- user_sync.status: counts for dashboards and the sync-all GET endpoint.
-- -----------------------------------------------------------------------------
create or replace function user_sync.status() returns jsonb
language sql
stable
security definer
set search_path = ''
set jit = off
as $$
  select jsonb_build_object(
    'auth_users', d.auth_users,
    'profiles', d.profiles,
    'missing', d.missing,
    'orphaned', d.orphaned,
    'drifted', d.drifted,
    'open_errors', (select count(*) from user_sync.errors e where e.resolved_at is null),
    'last_run', (
      select jsonb_build_object(
        'run_id', r.id, 'source', r.source, 'dry_run', r.dry_run, 'status', r.status,
        'started_at', r.started_at, 'finished_at', r.finished_at, 'duration_ms', r.duration_ms,
        'inserted', r.inserted, 'updated', r.updated, 'deleted', r.deleted, 'errors', r.errors)
      from user_sync.runs r order by r.id desc limit 1
    )
  )
  from (
    -- One pass over both tables.
    select count(x.id) as auth_users, count(x.profile_id) as profiles,
           count(*) filter (where x.missing) as missing, count(*) filter (where x.orphaned) as orphaned,
           count(*) filter (where x.drifted) as drifted
    from user_sync.profile_diff x
  ) d;
$$;
comment on function user_sync.status() is
  'Sync health: auth_users, profiles, missing, orphaned, drifted, open_errors, last_run.';
revoke execute on function user_sync.status() from public, anon, authenticated;
grant execute on function user_sync.status() to service_role;

-- -----------------------------------------------------------------------------
-- Scheduled healing: pg_cron job `user-sync` calls the sync-all edge function every
-- five minutes through pg_net. The project URL and the secret key come from Vault
-- (secrets user_sync_project_url and user_sync_secret_key); nothing secret is
-- written here. A missing secret fails the job with a clear message in
-- cron.job_run_details and the Postgres log.
-- -----------------------------------------------------------------------------
create or replace function user_sync.vault_secret(p_name text) returns text
language plpgsql
stable
set search_path = ''
as $$
declare
  v_value text;
begin
  select s.decrypted_secret into v_value
  from vault.decrypted_secrets s
  where s.name = p_name
  order by s.created_at desc
  limit 1;
  if v_value is null or btrim(v_value) = '' then
    raise exception using errcode = 'P0002',
      message = format('user_sync: Vault secret %L is missing', p_name),
      hint = format('Create it with: select vault.create_secret(''<value>'', %L);', p_name);
  end if;
  return v_value;
end
$$;
comment on function user_sync.vault_secret(text) is
  'Reads a Vault secret by name for the user-sync cron job; raises a clear error when it is missing.';
revoke execute on function user_sync.vault_secret(text) from public, anon, authenticated, service_role;

select cron.schedule(
  'user-sync',
  '*/5 * * * *',
  $cron$
  select net.http_post(
    url := rtrim(user_sync.vault_secret('user_sync_project_url'), '/') || '/functions/v1/sync-all',
    headers := jsonb_build_object(
      'Content-Type', 'application/json',
      'Authorization', 'Bearer ' || user_sync.vault_secret('user_sync_secret_key'),
      'apikey', user_sync.vault_secret('user_sync_secret_key')
    ),
    body := jsonb_build_object('source', 'cron'),
    timeout_milliseconds := 150000
  );
  $cron$
);
