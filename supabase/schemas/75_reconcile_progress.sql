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
  phase text not null default 'auth' check (phase in ('auth', 'profiles', 'ids')),
  walk_after tid,
  walk_blocks bigint
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
comment on column user_sync.reconcile_progress.last_id is 'The id merge (phase ids): the last id examined; null before its first batch.';
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
  'Where the pass is: auth (walking auth.users in physical order), profiles (walking public.users), ids (merging the ids of both primary keys).';
comment on column user_sync.reconcile_progress.walk_after is 'The walk in progress (phases auth, profiles): the last tid examined; null before its first batch.';
comment on column user_sync.reconcile_progress.walk_blocks is
  'Pages of the walked table when its walk began: the walk ends there (rows written later are newer than the horizon: the triggers and the next pass see to them).';
revoke all on user_sync.reconcile_progress from public, anon, authenticated;
grant select on user_sync.reconcile_progress to service_role;
