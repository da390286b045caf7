-- -----------------------------------------------------------------------------
-- Run log and error log
-- -----------------------------------------------------------------------------
create table if not exists user_sync.runs (
  id bigint generated always as identity primary key,
  source text not null,
  dry_run boolean not null default false,
  status text not null default 'running' check (status in ('running', 'ok', 'errors', 'failed', 'skipped')),
  started_at timestamptz not null default clock_timestamp(),
  finished_at timestamptz,
  duration_ms integer,
  auth_users bigint,
  profiles bigint,
  inserted bigint not null default 0,
  updated bigint not null default 0,
  deleted bigint not null default 0,
  unchanged bigint not null default 0,
  errors integer not null default 0,
  error text,
  horizon xid8,
  basis text,
  complete boolean,
  examined bigint,
  total bigint,
  full_compare boolean
);
comment on table user_sync.runs is 'One row per user_sync.reconcile() call (including dry runs and skipped overlapping calls).';
comment on column user_sync.runs.source is 'Who asked: cron, manual, api, admin, ...';
comment on column user_sync.runs.status is 'ok, errors (some users could not be synced, see user_sync.errors), failed (nothing applied), skipped (another run was in progress).';
comment on column user_sync.runs.horizon is
  'Set by the call that completes a successful (not dry) pass; taken when the pass started: every auth user and profile whose row version is older than this transaction id was in sync when the pass looked. The next pass re-derives only rows written since (see user_sync.reconcile_progress).';
comment on column user_sync.runs.basis is
  'Fingerprint of what profiles are derived from besides the rows (field rules, config, roles, the tables'' storage, the cluster). A horizon is only used under the same basis.';
comment on column user_sync.runs.complete is
  'Whether the pass this call belonged to is finished (false: a bounded call stopped at its time budget; the next call continues).';
comment on column user_sync.runs.examined is 'Auth users the pass had examined when this call ended (all calls of the pass so far).';
comment on column user_sync.runs.total is 'Auth users the pass expects to examine (an estimate while the pass runs).';
comment on column user_sync.runs.full_compare is 'Whether the pass compared every profile (true) or only rows written since the last complete pass.';
revoke all on user_sync.runs from public, anon, authenticated;
grant select on user_sync.runs to service_role;

create table if not exists user_sync.errors (
  id bigint generated always as identity primary key,
  user_id uuid,
  source text not null,
  run_id bigint references user_sync.runs (id) on delete set null,
  sqlstate text,
  message text not null,
  detail text,
  occurred_at timestamptz not null default clock_timestamp(),
  resolved_at timestamptz
);
comment on table user_sync.errors is
  'One row per failed sync of a user. Resolved (resolved_at set) when a later sync of that user succeeds.';
comment on column user_sync.errors.source is 'Where the sync failed: trigger, reconcile, sync_user, create-user, auth-webhook.';
create index if not exists errors_open_user_idx on user_sync.errors (user_id) where resolved_at is null;
create index if not exists errors_run_id_idx on user_sync.errors (run_id);
revoke all on user_sync.errors from public, anon, authenticated;
grant select on user_sync.errors to service_role;

-- -----------------------------------------------------------------------------
-- user_sync.record_error: write one error row; never raises, so that recording a
-- failure can never turn into a failed sign-up.
-- -----------------------------------------------------------------------------
create or replace function user_sync.record_error(
  p_user_id uuid,
  p_source text,
  p_sqlstate text,
  p_message text,
  p_detail text default null,
  p_run_id bigint default null
) returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into user_sync.errors (user_id, source, run_id, sqlstate, message, detail)
  values (p_user_id, coalesce(p_source, 'unknown'), p_run_id, p_sqlstate,
          left(coalesce(p_message, 'unknown error'), 2000), left(p_detail, 2000));
exception when others or query_canceled then
  raise warning 'user_sync: could not record the failed sync of user % (%): %', p_user_id, p_message, sqlerrm;
end
$$;
comment on function user_sync.record_error(uuid, text, text, text, text, bigint) is
  'Records a failed sync of one user in user_sync.errors; swallows its own failure (with a WARNING).';
revoke execute on function user_sync.record_error(uuid, text, text, text, text, bigint) from public, anon, authenticated;

-- -----------------------------------------------------------------------------
-- user_sync.resolve_errors: mark a user's open errors resolved after a good sync;
-- like record_error it never raises.
-- -----------------------------------------------------------------------------
create or replace function user_sync.resolve_errors(p_user_id uuid) returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  update user_sync.errors set resolved_at = now()
  where user_id = p_user_id and resolved_at is null;
exception when others then
  -- A broken error log must never turn a good sync into a failed one.
  raise warning 'user_sync: could not resolve the errors of user %: %', p_user_id, sqlerrm;
end
$$;
comment on function user_sync.resolve_errors(uuid) is 'Marks the open errors of one user resolved (called after a successful sync of that user).';
revoke execute on function user_sync.resolve_errors(uuid) from public, anon, authenticated;

