-- =============================================================================
-- User Sync for Supabase 0.2.0: authorization from Auth's truth, role changes never
-- lost, hostile self-edits refused (issue 11). Upgrades a live v0.1.0/v0.2.0
-- database; the current definitions live in supabase/schemas (20_profiles,
-- 65_role_changes, 70_authorization).
-- Order matters on a busy database: functions first (no table locks), then the one
-- scan that cleans names (row locks only), then the brief exclusive locks (the check
-- added NOT VALID, the trigger on auth.users), taken last so they are held for
-- milliseconds.
-- =============================================================================

-- -----------------------------------------------------------------------------
-- Authorization reads Auth's truth at the moment of the decision, never the mirror:
-- a demotion, soft delete or ban made in Auth counts at once, whatever state
-- public.users is in (the trigger may have given up on a locked profile).
-- user_sync.auth_role(id): the role Auth grants a user now, for the functions'
-- caller check and the custom_access_token hook (service_role only).
-- user_sync.is_admin(): the same question about the caller (auth.uid()) only, for
-- RLS policies and the guard. Function bodies, not views: nothing of ours may
-- depend on an auth.users column (Auth must be able to ALTER COLUMN TYPE).
-- -----------------------------------------------------------------------------
create or replace function user_sync.auth_role(p_user_id uuid) returns text
language sql
stable
security definer
set search_path = ''
as $$
  select coalesce(r.role, (select c.default_role from user_sync.config c), 'user')
  from auth.users au
  left join user_sync.roles r
    on r.role = case when jsonb_typeof(au.raw_app_meta_data -> 'role') = 'string' then au.raw_app_meta_data ->> 'role' end
  where au.id = p_user_id
    and au.deleted_at is null
    and (au.banned_until is null or au.banned_until <= now());
$$;
comment on function user_sync.auth_role(uuid) is
  'The role Auth grants this user now: raw_app_meta_data.role when it names a row of user_sync.roles, else the default role; null when the auth user is missing, soft-deleted or banned.';
revoke execute on function user_sync.auth_role(uuid) from public, anon, authenticated;
grant execute on function user_sync.auth_role(uuid) to service_role;

-- Security definer so that authenticated can ask inside RLS without reading
-- auth.users; it answers only about the caller, so it is granted to authenticated
-- (the one exception to "no security definer function for the API roles").
create or replace function user_sync.is_admin() returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select coalesce(user_sync.auth_role((select auth.uid())) = 'admin', false);
$$;
comment on function user_sync.is_admin() is
  'True when the calling user (auth.uid()) is an admin in Auth now: raw_app_meta_data.role admin, not soft-deleted, not banned.';
revoke execute on function user_sync.is_admin() from public, anon;
grant execute on function user_sync.is_admin() to authenticated, service_role;

-- -----------------------------------------------------------------------------
-- Guard on public.users. Role changes: only admins, whenever the request comes from
-- an end user, judged by the database role (anon, authenticated) and by the
-- request's JWT role, so that a security-definer function of the app (running as
-- postgres) cannot raise its caller's role either. Hand edits (every write that is
-- not a sync write, by anyone): name and avatar_url meet the rules of a derived
-- value (the check users_name_clean holds the character rules; the length bound of
-- user_sync.config and the avatar rule are checked here) and are remembered, so sync
-- never overwrites them. Sync writes are recognised by a new synced_at (sync stamps
-- it with clock_timestamp(); authenticated cannot write it) and pass: they copy
-- Auth. (A write that only pretends to be one can at most make the mirror's role
-- wrong until the next reconcile; no authorization decision reads it.) Security
-- invoker: current_user is the caller.
-- -----------------------------------------------------------------------------
create or replace function user_sync.guard_profile_write() returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
declare
  v_max integer;
begin
  if new.synced_at is distinct from old.synced_at and current_user not in ('anon', 'authenticated') then
    return new;
  end if;
  if new.role is distinct from old.role
     and (current_user in ('anon', 'authenticated') or coalesce(auth.role(), '') in ('anon', 'authenticated'))
     and not user_sync.is_admin() then
    raise exception using errcode = '42501', message = 'only admins can change roles',
      hint = 'Roles are changed by an admin, or by the service role through app_metadata.';
  end if;
  if new.name is distinct from old.name then
    v_max := (select c.name_max_length from user_sync.config c);
    if char_length(new.name) > v_max then
      raise exception using errcode = '23514', constraint = 'users_name_max_length',
        message = format('name is longer than %s characters (user_sync.config.name_max_length)', v_max);
    end if;
    new.name_edited_at := now();
  end if;
  if new.avatar_url is distinct from old.avatar_url then
    if new.avatar_url !~* '^https?://[^[:space:][:cntrl:]"''<>]+$' then
      raise exception using errcode = '23514', constraint = 'users_avatar_url_safe',
        message = 'avatar_url must be an http(s) URL without spaces, control characters, quotes or angle brackets';
    end if;
    new.avatar_url_edited_at := now();
  end if;
  if new is distinct from old then
    new.updated_at := now();
  end if;
  return new;
end
$$;
comment on function user_sync.guard_profile_write() is
  'BEFORE UPDATE trigger on public.users: role changes by admins only (database role and JWT role); hand edits of name/avatar_url checked and remembered.';
revoke execute on function user_sync.guard_profile_write() from public, anon;
-- The guard reads the length bound as the caller; the rest of the configuration stays private.
grant select (name_max_length) on user_sync.config to authenticated;

-- -----------------------------------------------------------------------------
-- No role change is lost to a read-modify-write of raw_app_meta_data.
-- GoTrue rewrites the whole raw_app_meta_data at every OAuth sign-in of an existing
-- user and at admin.updateUserById (read, change in memory, write back): a role
-- change committed between its read and its write would be silently undone.
-- Every role change is therefore stamped inside raw_app_meta_data, as
-- user_sync_role_stamp {v, role, from, base, at}: a version per user, the role it set,
-- the role it replaced, and the role before the first stamped change. A copy of the
-- metadata carries the stamp it was read with, so a write tells whether its writer
-- meant to change the role:
--   * its stamp is older than the current one and its role is the role of its own
--     stamp (for a copy from before the first stamped change, the base role): a stale
--     copy, the writer did not touch the role; the current role and stamp are kept,
--     the rest of the write lands;
--   * otherwise a role that differs from the current one is a role change (Data API
--     write-back, Auth admin API, SQL editor): it lands and is stamped (version + 1).
-- When two admins disagree, the role change committed last wins; a write that does
-- not change the role never undoes one.
-- BEFORE UPDATE, no WHEN clause and no column list (Auth must be able to ALTER its
-- columns); a write that leaves the role and the stamp alone (every sign-in) returns
-- after one comparison. Security invoker: it only rewrites NEW.
-- -----------------------------------------------------------------------------
create or replace function user_sync.keep_role_change() returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
declare
  v_old jsonb := old.raw_app_meta_data;
  v_new jsonb := new.raw_app_meta_data;
  v_old_stamp jsonb;
  v_new_stamp jsonb;
  v_old_version numeric;
  v_new_version numeric;
begin
  if (v_new -> 'role', v_new -> 'user_sync_role_stamp') is not distinct from (v_old -> 'role', v_old -> 'user_sync_role_stamp')
     or jsonb_typeof(v_new) is distinct from 'object' then
    return new;
  end if;
  if jsonb_typeof(v_old -> 'user_sync_role_stamp') = 'object' then
    v_old_stamp := v_old -> 'user_sync_role_stamp';
  end if;
  if jsonb_typeof(v_new -> 'user_sync_role_stamp') = 'object' then
    v_new_stamp := v_new -> 'user_sync_role_stamp';
  end if;
  v_old_version := case when jsonb_typeof(v_old_stamp -> 'v') = 'number' then (v_old_stamp ->> 'v')::numeric else 0 end;
  v_new_version := case when jsonb_typeof(v_new_stamp -> 'v') = 'number' then (v_new_stamp ->> 'v')::numeric else 0 end;

  if v_new_version < v_old_version
     and nullif(v_new -> 'role', 'null') is not distinct from
         nullif(case when v_new_stamp is not null then v_new_stamp -> 'role' else v_old_stamp -> 'base' end, 'null') then
    -- A stale copy written back without touching the role: keep the newer role change.
    new.raw_app_meta_data := (v_new - 'role' - 'user_sync_role_stamp')
      || jsonb_build_object('user_sync_role_stamp', v_old_stamp)
      || case when v_old ? 'role' then jsonb_build_object('role', v_old -> 'role') else '{}'::jsonb end;
  elsif (v_new -> 'role') is distinct from (v_old -> 'role') then
    -- A role change: stamp it.
    new.raw_app_meta_data := v_new || jsonb_build_object('user_sync_role_stamp', jsonb_strip_nulls(jsonb_build_object(
      'v', greatest(v_old_version, v_new_version) + 1,
      'role', v_new -> 'role',
      'from', v_old -> 'role',
      'base', case when v_old_stamp is null then v_old -> 'role' else v_old_stamp -> 'base' end,
      'at', now()
    )));
  elsif v_old_stamp is null then
    -- Same role, a stamp removed or made up: the stamp is ours.
    new.raw_app_meta_data := v_new - 'user_sync_role_stamp';
  else
    new.raw_app_meta_data := v_new || jsonb_build_object('user_sync_role_stamp', v_old_stamp);
  end if;
  return new;
end
$$;
comment on function user_sync.keep_role_change() is
  'BEFORE UPDATE trigger on auth.users: stamps every role change in raw_app_meta_data.user_sync_role_stamp and keeps it when a stale copy of the metadata is written back.';
revoke execute on function user_sync.keep_role_change() from public, anon, authenticated;

-- The admin check no longer reads the mirror.
drop view if exists user_sync.caller_is_admin;

-- -----------------------------------------------------------------------------
-- Existing names that break the new rule are cleaned the way a derived name is
-- (control and invisible characters out, whitespace trimmed; nothing left: null),
-- before the check is added: one scan, row locks on the few rows it changes, no
-- table lock. Stamped as a sync write (synced_at), so it is not taken for an edit.
-- -----------------------------------------------------------------------------
update public.users u set
  name = nullif(btrim(translate(u.name,
      E'\t\n\r\u000b\u000c\u0085\u2028\u2029'
      || E'\u0001\u0002\u0003\u0004\u0005\u0006\u0007\u0008\u000e\u000f'
      || E'\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001a\u001b\u001c\u001d\u001e\u001f\u007f'
      || E'\u0080\u0081\u0082\u0083\u0084\u0086\u0087\u0088\u0089\u008a\u008b\u008c\u008d\u008e\u008f'
      || E'\u0090\u0091\u0092\u0093\u0094\u0095\u0096\u0097\u0098\u0099\u009a\u009b\u009c\u009d\u009e\u009f'
      || E'\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2066\u2067\u2068\u2069\ufeff',
      '        '),
    E' \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000'), ''),
  updated_at = now(),
  synced_at = clock_timestamp()
where u.name ~ ('[\u0001-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff]'
  || '|^[ \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]|[ \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]$');

-- -----------------------------------------------------------------------------
-- public.users: names meet the rules of a derived name
-- -----------------------------------------------------------------------------
-- Names meet the rules of a derived name whoever writes them (a user's own edit
-- included): no control, zero-width or bidi-override characters, no line or paragraph
-- separator, no BOM, no whitespace at either end (so never whitespace only), 1 to 1000
-- characters (user_sync.config.name_max_length is checked on edits by the guard).
-- NOT VALID: added without scanning the table under an exclusive lock; the upgrade
-- cleans existing rows first (`validate constraint` may be run at leisure).
alter table public.users drop constraint if exists users_name_clean;
alter table public.users add constraint users_name_clean check (
  name is null or (
    char_length(name) between 1 and 1000
    and name !~ '[\u0001-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff]'
    and name !~ '^[ \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]|[ \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]$'
  )
) not valid;
comment on constraint users_name_clean on public.users is
  'A name has no control, zero-width, bidi-override or separator characters, no BOM, no whitespace at either end, and 1 to 1000 characters.';
-- -----------------------------------------------------------------------------
-- Last, as it locks auth.users briefly (sign-ins wait for the commit)
-- -----------------------------------------------------------------------------
create or replace trigger user_sync_keep_role_change
  before update on auth.users
  for each row
  execute function user_sync.keep_role_change();
