-- -----------------------------------------------------------------------------
-- user_sync.sync_user: make one profile match its auth user.
-- Returns inserted, updated, unchanged or deleted. Used by the edge functions and
-- reconcile's per-user fallback; the auth triggers use user_sync.sync_profile with
-- the row they are writing. Raises on failure; callers that must not fail (the
-- triggers) catch and record.
-- -----------------------------------------------------------------------------

-- One home for writing a profile: from the auth.users row (p_auth null), or from the
-- auth row given as values (a BEFORE trigger's NEW, which auth.users does not show yet).
create or replace function user_sync.sync_profile(p_user_id uuid, p_auth user_sync.auth_user_fields) returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_state user_sync.profile_state;
  d user_sync.expected_profile;
  v_result text;
begin
  if p_user_id is null or p_user_id is distinct from coalesce(p_auth.id, p_user_id) then
    raise exception using errcode = '22004', message = 'user_sync.sync_user: p_user_id must not be null (and must be p_auth.id)';
  end if;

  -- Three rounds at most: an insert that loses a race with a concurrent insert of the
  -- same profile turns into an update on the next round, an update of a profile deleted
  -- meanwhile (by hand, behind the system's back) into an insert: left deleted, a
  -- reconcile that read this user before this write could insert it from that read.
  for v_round in 1..3 loop
    if p_auth.id is not null then
      v_state := user_sync.profile_state_of(p_auth);
      d := v_state.expected;
    elsif exists (select 1 from public.users u where u.id = p_user_id) then
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
      v_result := case when found then 'deleted' else 'unchanged' end;
    elsif not v_state.profile_exists then
      if not user_sync.insert_derived_profile(d) then
        continue;
      end if;
      v_result := 'inserted';
    elsif v_state.drifted then
      if not user_sync.update_derived_profile(d) then
        continue;
      end if;
      v_result := 'updated';
    else
      v_result := 'unchanged';
    end if;
    exit;
  end loop;
  if v_result is null then
    -- Inserted and deleted by others round after round: the caller records it, reconcile heals it.
    raise exception using errcode = '40001',
      message = format('user_sync.sync_user: the profile of user %s kept changing during the sync', p_user_id);
  end if;

  -- In sync now: resolve the user's open errors (never raises, so that a broken error
  -- log cannot stop a sync).
  perform user_sync.resolve_errors(p_user_id);
  return v_result;
end
$$;
comment on function user_sync.sync_profile(uuid, user_sync.auth_user_fields) is
  'Makes the profile of one user match its auth row: the auth.users row when p_auth is null, else the values given (the row an auth.users trigger is writing). Returns inserted, updated, unchanged or deleted. Resolves that user''s open errors.';
revoke execute on function user_sync.sync_profile(uuid, user_sync.auth_user_fields) from public, anon, authenticated;

create or replace function user_sync.sync_user(p_user_id uuid) returns text
language sql
security definer
set search_path = ''
as $$
  select user_sync.sync_profile(p_user_id, null);
$$;
comment on function user_sync.sync_user(uuid) is
  'Makes the profile of one user match auth.users. Returns inserted, updated, unchanged or deleted (auth user gone). Resolves that user''s open errors.';
revoke execute on function user_sync.sync_user(uuid) from public, anon, authenticated;
grant execute on function user_sync.sync_user(uuid) to service_role;
