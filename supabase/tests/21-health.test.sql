-- user_sync.health() (part of status()): each way sync can stop silently is a problem
-- with a code; provoked one at a time, each is reported, and health never raises.
begin;
select plan(16);

create function pg_temp.codes() returns text[] language sql as $$
  select coalesce(array_agg(p ->> 'code' order by p ->> 'code'), '{}')
  from jsonb_array_elements(user_sync.health() -> 'problems') p
$$;

-- A healthy installation: both secrets, a recent successful reconcile, no failed run
-- of the job, no open error.
do $$ begin
  perform vault.create_secret('http://127.0.0.1:54321', 'user_sync_project_url');
  perform vault.create_secret('local-secret-key', 'user_sync_secret_key');
end $$;
delete from cron.job_run_details where jobid = (select jobid from cron.job where jobname = 'user-sync');
update user_sync.errors set resolved_at = now() where resolved_at is null;
insert into user_sync.runs (source, status, finished_at) values ('cron', 'ok', now());
select is(user_sync.health(), '{"ok": true, "problems": []}'::jsonb, 'a healthy installation: ok, no problem');
select is(user_sync.status() -> 'health', user_sync.health(), 'status() carries the health');

-- Triggers.
alter table auth.users disable trigger user_sync_on_auth_user_update;
select is(pg_temp.codes(), '{trigger_disabled}', 'a disabled trigger is trigger_disabled');
select ok((select bool_and(p ? 'message' and p ? 'hint') from jsonb_array_elements(user_sync.health() -> 'problems') p),
  'each problem has a message and a hint');
select is(user_sync.health() -> 'ok', 'false'::jsonb, 'and health is not ok');
alter table auth.users enable trigger user_sync_on_auth_user_update;
savepoint s;
drop trigger user_sync_on_auth_user_insert on auth.users;
select is(pg_temp.codes(), '{trigger_missing}', 'a dropped trigger (the db pull/diff round trip) is trigger_missing');
rollback to savepoint s;

-- The cron job.
update cron.job set active = false where jobname = 'user-sync';
select is(pg_temp.codes(), '{cron_job_inactive}', 'a paused job is cron_job_inactive');
update cron.job set active = true where jobname = 'user-sync';
insert into cron.job_run_details (jobid, runid, job_pid, database, username, command, status, return_message, start_time, end_time)
select jobid, 1000000 + g, 0, 'postgres', 'postgres', 'select 1', 'failed', 'ERROR:  boom' || E'\n' || 'more', now(), now()
from cron.job, generate_series(1, 2) g where jobname = 'user-sync';
select is(pg_temp.codes(), '{cron_failing}', 'recent failed runs of the job are cron_failing');
select ok((select p ->> 'message' from jsonb_array_elements(user_sync.health() -> 'problems') p) ~ 'failed 2 of its last 3 runs.*ERROR:  boom$',
  'the message counts the failures and quotes the first line of the last one');
insert into cron.job_run_details (jobid, runid, job_pid, database, username, command, status, return_message, start_time, end_time)
select jobid, 1000010, 0, 'postgres', 'postgres', 'select 1', 'succeeded', '1 row', now(), now()
from cron.job where jobname = 'user-sync';
select is(pg_temp.codes(), '{}', 'once the newest run succeeds, the job is no longer failing');
savepoint s;
delete from cron.job where jobname = 'user-sync';
select is(pg_temp.codes(), '{cron_job_missing}', 'a removed job is cron_job_missing');
rollback to savepoint s;

-- Vault.
delete from vault.secrets where name = 'user_sync_secret_key';
select is(pg_temp.codes(), '{vault_secret_missing}', 'a missing secret is vault_secret_missing');
do $$ begin perform vault.create_secret('local-secret-key', 'user_sync_secret_key'); end $$;

-- Reconcile.
update user_sync.runs set finished_at = now() - interval '16 minutes' where finished_at > now() - interval '16 minutes';
select is(pg_temp.codes(), '{reconcile_stale}', 'no successful reconcile for 15 minutes while the job is active is reconcile_stale');
insert into user_sync.runs (source, status, finished_at) values ('cron', 'ok', now());

-- Errors.
do $$ begin perform user_sync.record_error('f0000000-0000-4000-8000-000000000001', 'trigger', 'XX000', 'provoked', null); end $$;
select is(pg_temp.codes(), '{open_errors}', 'an unresolved sync error is open_errors');
update user_sync.errors set resolved_at = now() where resolved_at is null;

-- Never raises: without pg_cron or Vault it reports them.
savepoint s;
alter schema cron rename to cron_gone;
alter schema vault rename to vault_gone;
select is(pg_temp.codes(), '{cron_job_missing,vault_secret_missing}'::text[],
  'without pg_cron and Vault: problems, not an error');
rollback to savepoint s;
select is(pg_temp.codes(), '{}', 'healthy again');

select * from finish();
rollback;
