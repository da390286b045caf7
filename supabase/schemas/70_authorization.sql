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
-- never overwrites them; the app may clear such an edit (set name_edited_at /
-- avatar_url_edited_at to null: the field follows metadata again) but never set one.
-- Sync writes are recognised by a new synced_at (sync stamps
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
  if (current_user in ('anon', 'authenticated') or coalesce(auth.role(), '') in ('anon', 'authenticated'))
     and ((new.name_edited_at is distinct from old.name_edited_at and new.name_edited_at is not null)
       or (new.avatar_url_edited_at is distinct from old.avatar_url_edited_at and new.avatar_url_edited_at is not null)) then
    raise exception using errcode = '42501', message = 'edit markers can only be cleared',
      hint = 'Set name_edited_at or avatar_url_edited_at to null to follow auth metadata again; edits set them.';
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
  'BEFORE UPDATE trigger on public.users: role changes by admins only (database role and JWT role); hand edits of name/avatar_url checked and remembered; the app may only clear the edit markers.';
revoke execute on function user_sync.guard_profile_write() from public, anon;
-- The guard reads the length bound as the caller; the rest of the configuration stays private.
grant select (name_max_length) on user_sync.config to authenticated;

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
-- admins; updates limited to name, avatar_url, clearing their edit markers and
-- (admins only, enforced by the guard) role. No inserts or deletes: profiles are
-- created and removed by sync.
-- -----------------------------------------------------------------------------
alter table public.users enable row level security;

revoke all on public.users from public, anon, authenticated, service_role;
grant select on public.users to authenticated;
grant update (name, avatar_url, role, name_edited_at, avatar_url_edited_at) on public.users to authenticated;
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

