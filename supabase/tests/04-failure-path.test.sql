-- The failure path: with the profile table sabotaged, sign-ups and sign-ins still
-- succeed, each failure is recorded in user_sync.errors, and once the table is fixed
-- one reconcile heals every profile and resolves every error.
begin;
\ir _helpers.psql
select plan(15);

insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
values ('c0000000-0000-4000-8000-000000000001', 'authenticated', 'authenticated', 'before@example.com',
        '{"provider": "email", "providers": ["email"]}', '{"full_name": "Before Sabotage"}', now(), now());

-- Sabotage: every write to public.users now fails (a constraint no row satisfies).
alter table public.users add constraint sabotage check (false) not valid;

-- (pgTAP is not visible to supabase_auth_admin: a failing statement here aborts the
-- file, and the assertions below check that both writes went through.)
call tests.as_auth($$
insert into users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
values ('c0000000-0000-4000-8000-000000000002', 'authenticated', 'authenticated', 'signup@example.com',
        '{"provider": "google", "providers": ["google"]}', '{"full_name": "Signed Up"}', now(), now()),
       ('c0000000-0000-4000-8000-000000000003', 'authenticated', 'authenticated', 'signup2@example.com',
        '{"provider": "email", "providers": ["email"]}', '{}', now(), now());
update users set last_sign_in_at = '2026-05-05 05:05:05+00', raw_user_meta_data = '{"full_name": "Signed In"}'
where id = 'c0000000-0000-4000-8000-000000000001'
$$);

select is((select count(*)::int from auth.users where id::text like 'c0000000-%'), 3, 'sign-up succeeded while the profile table is broken');
select is((select last_sign_in_at from auth.users where id = 'c0000000-0000-4000-8000-000000000001'),
  '2026-05-05 05:05:05+00'::timestamptz, 'sign-in (last_sign_in_at + metadata merge) succeeded while the profile table is broken');
select is((select count(*)::int from public.users where id in ('c0000000-0000-4000-8000-000000000002', 'c0000000-0000-4000-8000-000000000003')),
  0, 'no profile could be written');
select results_eq(
  $$select user_id::text, source, sqlstate from user_sync.errors
    where user_id::text like 'c0000000-%' and resolved_at is null order by user_id$$,
  $$values ('c0000000-0000-4000-8000-000000000001', 'trigger', '23514'),
           ('c0000000-0000-4000-8000-000000000002', 'trigger', '23514'),
           ('c0000000-0000-4000-8000-000000000003', 'trigger', '23514')$$,
  'each failed sync is recorded with the user, the source and the SQLSTATE');
select ok((select bool_and(message ~ 'sabotage') from user_sync.errors where user_id::text like 'c0000000-%'),
  'the error message names the cause');
select is((user_sync.status() ->> 'open_errors')::int >= 3, true, 'status() counts the open errors');
select is((user_sync.status() ->> 'missing')::int >= 2, true, 'status() counts the missing profiles');

-- While still broken, a reconcile cannot heal but records per-user errors and fails nothing else.
select is(user_sync.reconcile() ->> 'status', 'errors', 'reconcile on a broken table reports errors instead of failing');

-- Fix, then one reconcile heals everything.
alter table public.users drop constraint sabotage;
select is(
  (select jsonb_build_object('inserted', r -> 'inserted', 'updated', r -> 'updated', 'status', r -> 'status')
   from user_sync.reconcile() r),
  '{"inserted": 2, "updated": 1, "status": "ok"}'::jsonb,
  'after the fix one reconcile inserts the missing profiles and updates the stale one');
select results_eq(
  $$select id::text, name from public.users where id::text like 'c0000000-%' order by id$$,
  $$values ('c0000000-0000-4000-8000-000000000001', 'Signed In'),
           ('c0000000-0000-4000-8000-000000000002', 'Signed Up'),
           ('c0000000-0000-4000-8000-000000000003', 'signup2')$$,
  'every profile is healed with current data');
select is((select count(*)::int from user_sync.errors where user_id::text like 'c0000000-%' and resolved_at is null),
  0, 'every error is resolved');
select is((user_sync.status() ->> 'missing')::int, 0, 'status() shows nothing missing');
select is((user_sync.status() ->> 'drifted')::int, 0, 'status() shows nothing drifted');

-- Even a broken error log does not block sign-up.
alter table user_sync.errors rename to errors_broken;
call tests.as_auth($$
insert into users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
values ('c0000000-0000-4000-8000-000000000004', 'authenticated', 'authenticated', 'resilient@example.com',
        '{"provider": "email", "providers": ["email"]}', '{}', now(), now())
$$);
select is((select count(*)::int from auth.users where id = 'c0000000-0000-4000-8000-000000000004'),
  1, 'sign-up succeeds even when the error log cannot be written');
select is((select count(*)::int from public.users where id = 'c0000000-0000-4000-8000-000000000004'),
  1, 'and the profile is still created');

select * from finish();
rollback;
