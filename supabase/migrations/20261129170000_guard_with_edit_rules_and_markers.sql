-- =============================================================================
-- User Sync for Supabase 0.2.0: the guard on public.users with both of today's
-- changes (hand edits checked and role changes judged by the JWT role as well, from
-- 20261129120000; edit markers the app may clear, from 20261129130000).
-- Current definition: supabase/schemas/70_authorization.sql.
-- =============================================================================

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

