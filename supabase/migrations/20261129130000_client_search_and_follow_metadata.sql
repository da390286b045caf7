-- =============================================================================
-- User Sync for Supabase 0.2.0: for frontends (@user-sync/client).
-- Admin search that scales (trigram indexes on email and name, created_at for
-- paging), and the app may clear an edit marker so a field follows metadata again.
-- Upgrades a live v0.1.0/v0.2.0 database; the current definitions live in
-- supabase/schemas (20_profiles.sql, 70_authorization.sql).
--
-- Large tables: CREATE INDEX blocks writes to public.users (sign-ups wait) while it
-- builds, about 20 s at 1M profiles. To avoid that, create the three indexes with
-- CREATE INDEX CONCURRENTLY (same names and definitions) before `supabase db push`:
-- `if not exists` then skips them here.
-- =============================================================================

-- -----------------------------------------------------------------------------
-- Admin search (listUsers in @user-sync/client): a case-insensitive substring of
-- email or name, `email ilike '%term%' or name ilike '%term%'`, answered from two
-- trigram indexes (a BitmapOr) instead of a scan; pages in the default order
-- (newest first) walk created_at. Not on columns that sign-ins change
-- (last_sign_in_at), so a sign-in's profile update can stay a HOT update.
-- -----------------------------------------------------------------------------
create extension if not exists pg_trgm with schema extensions;

create index if not exists users_email_trgm_idx on public.users using gin (email extensions.gin_trgm_ops);
create index if not exists users_name_trgm_idx on public.users using gin (name extensions.gin_trgm_ops);
create index if not exists users_created_at_idx on public.users (created_at desc, id);

-- -----------------------------------------------------------------------------
-- Guard on public.users: the app may clear name_edited_at / avatar_url_edited_at
-- (set them to null: the field follows auth metadata again at the next sync), never
-- set them; the owner's UPDATE grant now covers those two columns.
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

grant update (name, avatar_url, role, name_edited_at, avatar_url_edited_at) on public.users to authenticated;
