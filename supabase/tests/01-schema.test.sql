-- Schema, columns, grants, RLS, triggers and the cron job: the contract a user
-- deploys. Runs as a superuser (supabase_admin) in one transaction, rolled back.
begin;
select plan(49);

-- public.users ---------------------------------------------------------------
select has_table('public', 'users', 'public.users exists');
select columns_are('public', 'users', array[
  'id', 'email', 'phone', 'name', 'avatar_url', 'role', 'provider', 'providers', 'is_anonymous',
  'email_confirmed_at', 'last_sign_in_at', 'created_at', 'deleted_at', 'updated_at', 'synced_at',
  'name_edited_at', 'avatar_url_edited_at'
], 'public.users has exactly the documented columns');
select col_is_pk('public', 'users', 'id', 'id is the primary key');
select col_type_is('public', 'users', 'id', 'uuid', 'id is a uuid');
select col_type_is('public', 'users', 'providers', 'text[]', 'providers is text[]');
select col_type_is('public', 'users', 'deleted_at', 'timestamp with time zone', 'deleted_at is timestamptz');
select col_not_null('public', 'users', 'role', 'role is not null');
select col_default_is('public', 'users', 'role', 'user', 'role defaults to user');
select col_is_null('public', 'users', 'email', 'email is nullable (phone-only, anonymous users)');
select col_is_null('public', 'users', 'phone', 'phone is nullable');
select fk_ok('public', 'users', 'id', 'auth', 'users', 'id', 'id references auth.users(id)');
select is(
  (select confdeltype::text from pg_constraint
   where conrelid = 'public.users'::regclass and confrelid = 'auth.users'::regclass),
  'c', 'the foreign key cascades on delete');
select ok((select relrowsecurity from pg_class where oid = 'public.users'::regclass), 'RLS is enabled on public.users');
select isnt((select obj_description('public.users'::regclass, 'pg_class')), null, 'public.users is documented');

-- user_sync ----------------------------------------------------------------
select has_schema('user_sync', 'schema user_sync exists');
select has_table('user_sync', 'runs', 'user_sync.runs exists');
select has_table('user_sync', 'errors', 'user_sync.errors exists');
select function_returns('user_sync', 'sync_user', array['uuid'], 'text', 'sync_user(uuid) returns text');
select function_returns('user_sync', 'reconcile', array['boolean', 'text', 'integer'], 'jsonb', 'reconcile(boolean, text, integer) returns jsonb');
select function_returns('user_sync', 'status', array[]::text[], 'jsonb', 'status() returns jsonb');
select is(
  (select pg_get_function_arguments('user_sync.reconcile(boolean, text, integer)'::regprocedure)),
  'p_dry_run boolean DEFAULT false, p_source text DEFAULT ''manual''::text, p_max_ms integer DEFAULT NULL::integer',
  'reconcile defaults to a real, manual, unbounded run');

select is(
  (select count(*)::int from pg_proc p join pg_namespace n on n.oid = p.pronamespace
   where n.nspname = 'user_sync'
     and not coalesce(p.proconfig, '{}') @> array['search_path=""']),
  0, 'every user_sync function pins search_path to ''''');
select results_eq(
  $$select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'user_sync' and p.prosecdef
      and (has_function_privilege('anon', p.oid, 'execute')
           or has_function_privilege('authenticated', p.oid, 'execute')
           or exists (select 1 from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                      where a.grantee = 0 and a.privilege_type = 'EXECUTE'))$$,
  $$values ('user_sync.is_admin()')$$,
  'no security-definer function is executable by public, anon or authenticated but is_admin() (it answers only about the caller)');
select ok(not has_function_privilege('anon', 'user_sync.is_admin()', 'execute')
  and not exists (select 1 from aclexplode((select proacl from pg_proc where oid = 'user_sync.is_admin()'::regprocedure)) a
                  where a.grantee = 0 and a.privilege_type = 'EXECUTE'),
  'is_admin() is not executable by anon or public');
select is(
  (select count(*)::int from pg_proc p join pg_namespace n on n.oid = p.pronamespace
   where n.nspname = 'user_sync' and p.prosecdef
     and p.proname in ('sync_user', 'reconcile', 'status', 'on_auth_user_insert', 'on_auth_user_update')),
  5, 'sync functions and the auth trigger functions are security definer');

-- grants -------------------------------------------------------------------
select table_privs_are('public', 'users', 'anon', array[]::text[], 'anon has no privilege on public.users');
select table_privs_are('public', 'users', 'authenticated', array['SELECT'], 'authenticated may only select the table');
select column_privs_are('public', 'users', 'name', 'authenticated', array['SELECT', 'UPDATE'], 'authenticated may update name');
select column_privs_are('public', 'users', 'avatar_url', 'authenticated', array['SELECT', 'UPDATE'], 'authenticated may update avatar_url');
select column_privs_are('public', 'users', 'email', 'authenticated', array['SELECT'], 'authenticated may not update email');
select column_privs_are('public', 'users', 'synced_at', 'authenticated', array['SELECT'], 'authenticated may not update synced_at');
select column_privs_are('public', 'users', 'name_edited_at', 'authenticated', array['SELECT', 'UPDATE'], 'authenticated may update edit markers (the guard allows only clearing them)');
select table_privs_are('public', 'users', 'service_role', array['DELETE', 'INSERT', 'SELECT', 'UPDATE'], 'service_role has explicit DML grants');
select table_privs_are('user_sync', 'runs', 'authenticated', array[]::text[], 'authenticated cannot read runs');
select table_privs_are('user_sync', 'errors', 'anon', array[]::text[], 'anon cannot read errors');
select ok(not has_schema_privilege('anon', 'user_sync', 'usage'), 'anon has no usage on user_sync');

-- triggers -----------------------------------------------------------------
select trigger_is('auth', 'users', 'user_sync_on_auth_user_insert', 'user_sync', 'on_auth_user_insert',
  'AFTER INSERT trigger on auth.users syncs the profile');
select trigger_is('auth', 'users', 'user_sync_on_auth_user_update', 'user_sync', 'on_auth_user_update',
  'BEFORE UPDATE trigger on auth.users syncs the profile');
select ok(
  (select pg_get_triggerdef(t.oid) ~ '^CREATE TRIGGER user_sync_on_auth_user_update BEFORE UPDATE ON auth.users FOR EACH ROW EXECUTE FUNCTION'
   from pg_trigger t where t.tgname = 'user_sync_on_auth_user_update'),
  'the update trigger has no WHEN clause and no column list (Auth can alter its columns)');
select is(
  (select array_agg(t.tgname::text order by t.tgname) from pg_trigger t
   where t.tgrelid = 'auth.users'::regclass and not t.tgisinternal and (t.tgtype & 1) = 1
     and t.tgfoid in (select p.oid from pg_proc p where p.pronamespace = 'user_sync'::regnamespace)),
  array['user_sync_on_auth_user_insert', 'user_sync_on_auth_user_update'],
  'one row trigger of ours per Auth write: a sign-in fires one trigger, a sign-up one');
select is(
  (select pg_get_triggerdef(t.oid) from pg_trigger t where t.tgname = 'user_sync_keep_role_change'),
  'CREATE TRIGGER user_sync_keep_role_change AFTER TRUNCATE ON auth.users FOR EACH STATEMENT EXECUTE FUNCTION user_sync.retired_trigger()',
  'the retired role-stamp trigger (a migration cannot drop it) fires on nothing Auth does');
select trigger_is('public', 'users', 'user_sync_guard_profile_write', 'user_sync', 'guard_profile_write',
  'public.users has the guard trigger');

-- cron job -----------------------------------------------------------------
select is((select schedule from cron.job where jobname = 'user-sync'), '*/5 * * * *', 'user-sync runs every five minutes');
select is((select username from cron.job where jobname = 'user-sync'), 'postgres', 'user-sync runs as postgres');
select ok(
  (select command ~ 'net\.http_post' and command ~ '/functions/v1/sync-all'
      and command ~ 'user_sync_project_url' and command ~ 'user_sync_secret_key'
   from cron.job where jobname = 'user-sync'),
  'the job posts to sync-all with URL and key from Vault');
select ok(
  (select command !~ '(eyJ|sb_secret_|whsec_|supabase\.co)' from cron.job where jobname = 'user-sync'),
  'the job command holds no secret and no project URL');

-- The job command fails loudly without Vault secrets ...
set local role postgres;
select throws_like(
  (select command from cron.job where jobname = 'user-sync'),
  '%Vault secret ''user_sync_project_url'' is missing%',
  'without Vault secrets the job fails with a clear message');
reset role;

-- ... and queues the right request with them (run as postgres, like the job).
select vault.create_secret('http://127.0.0.1:54321/', 'user_sync_project_url');
select vault.create_secret('test-secret-key-123', 'user_sync_secret_key');
set local role postgres;
select lives_ok((select command from cron.job where jobname = 'user-sync'), 'with Vault secrets the job command runs as postgres');
reset role;
select results_eq(
  $$select url, headers ->> 'Authorization', headers ->> 'apikey', convert_from(body, 'UTF8')::jsonb ->> 'source'
    from net.http_request_queue order by id desc limit 1$$,
  $$values ('http://127.0.0.1:54321/functions/v1/sync-all', 'Bearer test-secret-key-123', 'test-secret-key-123', 'cron')$$,
  'the queued request targets sync-all with the secret key, marked as a cron call');

select * from finish();
rollback;
