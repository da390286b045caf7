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
-- Applied by the BEFORE UPDATE trigger on auth.users (60_auth_trigger.sql) to every
-- write that changes raw_app_meta_data; a sign-in never gets here. A pure function of
-- the metadata before and after the write: what the write must store.
-- -----------------------------------------------------------------------------
create or replace function user_sync.stamped_app_metadata(p_old jsonb, p_new jsonb) returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
  v_old_stamp jsonb;
  v_new_stamp jsonb;
  v_old_version numeric;
  v_new_version numeric;
begin
  if (p_new -> 'role', p_new -> 'user_sync_role_stamp') is not distinct from (p_old -> 'role', p_old -> 'user_sync_role_stamp')
     or jsonb_typeof(p_new) is distinct from 'object' then
    return p_new;
  end if;
  if jsonb_typeof(p_old -> 'user_sync_role_stamp') = 'object' then
    v_old_stamp := p_old -> 'user_sync_role_stamp';
  end if;
  if jsonb_typeof(p_new -> 'user_sync_role_stamp') = 'object' then
    v_new_stamp := p_new -> 'user_sync_role_stamp';
  end if;
  v_old_version := case when jsonb_typeof(v_old_stamp -> 'v') = 'number' then (v_old_stamp ->> 'v')::numeric else 0 end;
  v_new_version := case when jsonb_typeof(v_new_stamp -> 'v') = 'number' then (v_new_stamp ->> 'v')::numeric else 0 end;

  if v_new_version < v_old_version
     and nullif(p_new -> 'role', 'null') is not distinct from
         nullif(case when v_new_stamp is not null then v_new_stamp -> 'role' else v_old_stamp -> 'base' end, 'null') then
    -- A stale copy written back without touching the role: keep the newer role change.
    return (p_new - 'role' - 'user_sync_role_stamp')
      || jsonb_build_object('user_sync_role_stamp', v_old_stamp)
      || case when p_old ? 'role' then jsonb_build_object('role', p_old -> 'role') else '{}'::jsonb end;
  elsif (p_new -> 'role') is distinct from (p_old -> 'role') then
    -- A role change: stamp it.
    return p_new || jsonb_build_object('user_sync_role_stamp', jsonb_strip_nulls(jsonb_build_object(
      'v', greatest(v_old_version, v_new_version) + 1,
      'role', p_new -> 'role',
      'from', p_old -> 'role',
      'base', case when v_old_stamp is null then p_old -> 'role' else v_old_stamp -> 'base' end,
      'at', now()
    )));
  elsif v_old_stamp is null then
    -- Same role, a stamp removed or made up: the stamp is ours.
    return p_new - 'user_sync_role_stamp';
  end if;
  return p_new || jsonb_build_object('user_sync_role_stamp', v_old_stamp);
end
$$;
comment on function user_sync.stamped_app_metadata(jsonb, jsonb) is
  'The raw_app_meta_data an auth.users write must store: every role change stamped in user_sync_role_stamp, a stale copy written back keeping the newer role. Used by the BEFORE UPDATE trigger on auth.users.';
revoke execute on function user_sync.stamped_app_metadata(jsonb, jsonb) from public, anon, authenticated;
