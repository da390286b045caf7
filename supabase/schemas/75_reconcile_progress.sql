-- -----------------------------------------------------------------------------
-- Reconcile progress: where the pass in progress stands, so that bounded calls
-- (user_sync.reconcile(..., p_max_ms)) continue one another from any runner and
-- across a crash: each call moves it forward in the transaction that does the work.
-- One row per kind of pass (real, dry run). A finished real pass stays until the
-- next one starts: its horizon tells the next pass which rows it may skip.
-- -----------------------------------------------------------------------------
create table if not exists user_sync.reconcile_progress (
  dry_run boolean primary key,
  run_id bigint not null,
  started_at timestamptz not null,
  finished_at timestamptz,
  full_compare boolean not null,
  since xid8,
  skip_xids xid[] not null default '{}',
  horizon xid8 not null,
  basis text not null,
  last_id uuid,
  examined bigint not null default 0,
  total bigint,
  auth_users bigint not null default 0,
  profiles bigint not null default 0,
  errors bigint not null default 0,
  written_xids xid[] not null default '{}',
  batch_rows integer not null,
  last_full_compare_at timestamptz,
  updated_at timestamptz not null default now(),
  phase text not null default 'auth',
  walk_after tid,
  walk_blocks bigint,
  walked_profiles bigint not null default 0,
  bucket_differences integer[],
  merge_buckets integer[],
  constraint reconcile_progress_phase_check
    check (phase in ('auth', 'profiles', 'deleted', 'recount_auth', 'recount_profiles', 'ids', 'errors'))
);
comment on table user_sync.reconcile_progress is
  'The reconcile pass in progress (finished_at null) or the last finished one, per kind (dry_run). Bounded reconcile calls continue from here.';
comment on column user_sync.reconcile_progress.run_id is 'The user_sync.runs row of the call that started the pass.';
comment on column user_sync.reconcile_progress.finished_at is 'When the pass examined its last user; null while it is in progress.';
comment on column user_sync.reconcile_progress.full_compare is
  'The pass compares every profile; otherwise only rows written since the last finished pass (since), plus missing and orphaned profiles.';
comment on column user_sync.reconcile_progress.since is 'The horizon of the last finished pass the incremental comparison starts from; null for a full comparison.';
comment on column user_sync.reconcile_progress.skip_xids is
  'Transactions of the last finished pass that wrote profiles: those row versions were in sync when written, so the pass does not re-derive them.';
comment on column user_sync.reconcile_progress.horizon is
  'Taken when the pass started: every row version older than this was visible to the pass. A finished pass without errors hands it on as the next pass''s since.';
comment on column user_sync.reconcile_progress.basis is 'Fingerprint of the rules and settings the pass compares under; a change restarts the pass as a full comparison.';
comment on column user_sync.reconcile_progress.last_id is 'The id merge (phase ids), the deletion log (phase deleted) or the open errors (phase errors): the last id examined; null before its first batch.';
comment on column user_sync.reconcile_progress.examined is 'Auth users examined so far by the walk of auth.users.';
comment on column user_sync.reconcile_progress.total is 'Auth users to examine: the planner''s estimate when the pass started, the exact count when it finished.';
comment on column user_sync.reconcile_progress.auth_users is 'Auth users seen by the walk of auth.users so far.';
comment on column user_sync.reconcile_progress.profiles is 'Profiles of the users examined so far (without the missing ones), plus orphaned ones found, after what the pass inserted and removed.';
comment on column user_sync.reconcile_progress.errors is 'Users that failed in this pass (see user_sync.errors); a pass with errors hands on no horizon.';
comment on column user_sync.reconcile_progress.written_xids is 'Transactions of this pass that wrote profiles (skip_xids of the next pass).';
comment on column user_sync.reconcile_progress.batch_rows is 'Auth users per batch, adapted to the time a batch takes; carried from call to call.';
comment on column user_sync.reconcile_progress.last_full_compare_at is 'Start of the last finished full comparison (user_sync.config.full_compare_every).';
comment on column user_sync.reconcile_progress.updated_at is 'Last call that moved the pass.';
comment on column user_sync.reconcile_progress.phase is
  'Where the pass is: auth (walking auth.users in physical order), profiles (walking public.users), deleted (an incremental pass: the profiles deleted since, from user_sync.deleted_profiles), recount_auth and recount_profiles (an incremental pass whose walks disagreed: both tables counted again by id bucket), ids (merging the ids of both primary keys: every id, or the buckets that disagreed), errors (an incremental pass without the full merge: the open errors, a batch at a time).';
comment on column user_sync.reconcile_progress.walk_after is 'The walk in progress (phases auth, profiles): the last tid examined; null before its first batch.';
comment on column user_sync.reconcile_progress.walk_blocks is
  'Pages of the walked table when its walk began: the walk ends there (rows written later are newer than the horizon: the triggers and the next pass see to them).';
comment on column user_sync.reconcile_progress.walked_profiles is
  'Profiles the pass has accounted for: those its walk of auth.users wrote, those its walk of public.users saw that the pass had not written, then the logged deletions found still missing. When it equals the auth users the walk of auth.users saw, an incremental pass has nothing for the id merge.';
comment on column user_sync.reconcile_progress.bucket_differences is
  'The recount (phases recount_auth, recount_profiles): per id bucket (user_sync.reconcile_bucket), the auth users counted less the profiles counted; null otherwise.';
comment on column user_sync.reconcile_progress.merge_buckets is
  'The id buckets whose recount disagreed, in order: the only ones an incremental pass merges (phase ids); null for a merge of every id.';
revoke all on user_sync.reconcile_progress from public, anon, authenticated;
grant select on user_sync.reconcile_progress to service_role;

-- -----------------------------------------------------------------------------
-- Profiles deleted while their auth user stays (by hand, by an app, a restore under
-- session_replication_role = replica: the trigger fires always): logged, so that an
-- incremental reconcile pass inserts them again without merging every id of both
-- tables. A hard delete of the auth user (its cascade removes the profile) logs
-- nothing. A pass consumes the entries older than its horizon.
-- -----------------------------------------------------------------------------
create table if not exists user_sync.deleted_profiles (
  user_id uuid not null,
  deleted_xid xid8 not null default pg_catalog.pg_current_xact_id()
);
create index if not exists deleted_profiles_user_id_idx on user_sync.deleted_profiles (user_id);
comment on table user_sync.deleted_profiles is
  'Profiles deleted while their auth user stayed, for the next incremental reconcile pass (consumed by it).';
comment on column user_sync.deleted_profiles.user_id is 'The auth user whose profile was deleted.';
comment on column user_sync.deleted_profiles.deleted_xid is 'The deleting transaction: a pass consumes the entries older than its horizon.';
revoke all on user_sync.deleted_profiles from public, anon, authenticated;

-- Why a statement trigger: one insert per DELETE statement, whatever its size; the
-- lookup in auth.users keeps the cascade of Auth's hard deletes out of the log. It
-- fires in that cascade, so it never fails: a deletion it cannot log makes the next
-- pass's walks disagree, and the id merge finds the profile. The deleted ids are looked
-- up by primary key, so the cost follows the statement's size, never the table's, under
-- any planner settings (reconcile's orphan deletes run with nested loops off).
create or replace function user_sync.log_deleted_profiles() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into user_sync.deleted_profiles (user_id)
  select au.id from auth.users au
  where au.id = any (array(select o.id from old_profiles o));
  return null;
exception when others or query_canceled then
  raise warning 'user_sync: deleted profiles not logged (%); the next reconcile merges the ids instead', sqlerrm;
  return null;
end
$$;
comment on function user_sync.log_deleted_profiles() is
  'AFTER DELETE statement trigger on public.users: logs the deleted profiles whose auth user stays, for the next incremental reconcile pass.';
revoke execute on function user_sync.log_deleted_profiles() from public, anon, authenticated;

create or replace trigger user_sync_log_deleted_profiles
  after delete on public.users
  referencing old table as old_profiles
  for each statement execute function user_sync.log_deleted_profiles();
-- Also under session_replication_role = replica (imports, restores).
alter table public.users enable always trigger user_sync_log_deleted_profiles;
