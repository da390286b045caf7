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

create or replace trigger user_sync_keep_role_change
  before update on auth.users
  for each row
  execute function user_sync.keep_role_change();
