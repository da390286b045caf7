-- -----------------------------------------------------------------------------
-- 0.5.0: resolving the open errors of an id range runs under reconcile's planner
-- settings again, as in 0.4.0. 20261130050000 made it look its users up by key; with
-- thousands of open errors (a profile table broken during sign-ups) the planner then
-- chose a nested loop over a materialized side on a low row estimate, quadratic: the
-- one reconcile that heals 10,000 recorded sign-ups ran for minutes. Under nested loops
-- off it hashes each side once (public.users whole, as 0.3.0 and 0.4.0 did).
-- Current definition: supabase/schemas/80_reconcile.sql.
-- -----------------------------------------------------------------------------

-- Open errors of users in the id range (p_after, p_upto] (other than this call's)
-- are resolved when the user is now in sync or gone; with p_upto null, to the end,
-- and errors without a user too.
create or replace function user_sync.reconcile_resolve_errors(
  p_after uuid,
  p_upto uuid,
  p_run_id bigint
) returns void
language plpgsql
set search_path = ''
as $$
declare
  v_open uuid[];
  v_any boolean;
begin
  select coalesce(array_agg(distinct e.user_id) filter (where e.user_id is not null), '{}'),
         count(*) filter (where e.user_id is not null or p_upto is null) > 0
    into v_open, v_any
    from user_sync.errors e
    where e.resolved_at is null and e.run_id is distinct from p_run_id
      and (e.user_id is null
           or ((p_after is null or e.user_id > p_after) and (p_upto is null or e.user_id <= p_upto)));
  if not v_any then
    return;
  end if;
  execute format($q$
    update user_sync.errors e set resolved_at = now()
    where e.resolved_at is null
      and e.run_id is distinct from $2
      and ((e.user_id is null and $3) or e.user_id = any($1))
      and not exists (
        select 1 from (%s) x
        where x.id = any($1) and x.id = e.user_id and (x.missing or x.drifted)
      )$q$, user_sync.profile_diff_sql())
    using v_open, p_run_id, p_upto is null;
end
$$;
comment on function user_sync.reconcile_resolve_errors(uuid, uuid, bigint) is
  'Resolves the open errors of users in an id range that are now in sync or gone.';
revoke execute on function user_sync.reconcile_resolve_errors(uuid, uuid, bigint) from public, anon, authenticated;
