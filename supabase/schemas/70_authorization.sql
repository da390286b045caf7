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
-- so that sync never overwrites it; the app may clear such an edit (set
-- name_edited_at / avatar_url_edited_at to null: the field follows metadata again)
-- but never set one. Security invoker: current_user is the caller.
-- -----------------------------------------------------------------------------
create or replace function user_sync.guard_profile_write() returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  if current_user in ('anon', 'authenticated')
     and ((new.name_edited_at is distinct from old.name_edited_at and new.name_edited_at is not null)
       or (new.avatar_url_edited_at is distinct from old.avatar_url_edited_at and new.avatar_url_edited_at is not null)) then
    raise exception using errcode = '42501', message = 'edit markers can only be cleared',
      hint = 'Set name_edited_at or avatar_url_edited_at to null to follow auth metadata again; edits set them.';
  end if;
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
  'BEFORE UPDATE trigger on public.users for non-sync writes: role changes by admins only; remembers app edits of name/avatar_url; the app may only clear the edit markers.';
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

