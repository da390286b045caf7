-- A sign-in that only moves last_sign_in_at (of a user who signed in before) costs
-- Auth one comparison: the profile is not written. The next reconcile refreshes the
-- mirror's last_sign_in_at (the auth row's new xmin puts it in the incremental pass).
-- A first sign-in, and any change to a mirrored column, syncs at once.
begin;
\ir _helpers.psql
select plan(8);

call tests.as_auth($$
insert into users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
values ('e2000000-0000-4000-8000-000000000001', 'authenticated', 'authenticated', 'fast@example.com',
        '{"provider": "email", "providers": ["email"]}', '{"full_name": "Fast Path"}', now(), now())
$$);
-- First sign-in: mirrored at once.
call tests.as_auth($$update users set last_sign_in_at = '2026-01-01 10:00:00+00' where id = 'e2000000-0000-4000-8000-000000000001'$$);
select is((select last_sign_in_at from public.users where id = 'e2000000-0000-4000-8000-000000000001'),
  '2026-01-01 10:00:00+00'::timestamptz, 'the first sign-in is mirrored at once');
create temp table before_sign_in as
  select xmin::text as row_version from public.users where id = 'e2000000-0000-4000-8000-000000000001';

call tests.as_auth($$
update users set last_sign_in_at = '2026-01-02 10:00:00+00', updated_at = now() where id = 'e2000000-0000-4000-8000-000000000001';
update users set confirmation_token = 'abc', updated_at = now() where id = 'e2000000-0000-4000-8000-000000000001'
$$);
select is((select xmin::text from public.users where id = 'e2000000-0000-4000-8000-000000000001'),
  (select row_version from before_sign_in), 'a later sign-in and a write to unmirrored columns leave the profile unwritten');
select is((select last_sign_in_at from public.users where id = 'e2000000-0000-4000-8000-000000000001'),
  '2026-01-01 10:00:00+00'::timestamptz, 'the mirror keeps the previous sign-in time until the next reconcile');
select is((user_sync.status() ->> 'drifted')::int, 1, 'status() counts it as drifted');
select is((user_sync.reconcile() ->> 'updated')::int, 1, 'the next reconcile refreshes it');
select is((select last_sign_in_at from public.users where id = 'e2000000-0000-4000-8000-000000000001'),
  '2026-01-02 10:00:00+00'::timestamptz, 'to the latest sign-in');

call tests.as_auth($$
update users set last_sign_in_at = '2026-01-03 10:00:00+00', email_confirmed_at = '2026-01-03 10:00:00+00'
where id = 'e2000000-0000-4000-8000-000000000001'
$$);
select results_eq(
  $$select last_sign_in_at, email_confirmed_at from public.users where id = 'e2000000-0000-4000-8000-000000000001'$$,
  $$values ('2026-01-03 10:00:00+00'::timestamptz, '2026-01-03 10:00:00+00'::timestamptz)$$,
  'a sign-in that also changes a mirrored column syncs at once, last_sign_in_at included');

-- The trigger's lock budget is a setting anyone in the session can set: garbage in it
-- is a fresh budget, not an error in Auth's write.
set local user_sync.lock_budget_ms = 'not a number';
call tests.as_auth($$
insert into users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
values ('e2000000-0000-4000-8000-000000000002', 'authenticated', 'authenticated', 'budget@example.com',
        '{"provider": "email", "providers": ["email"]}', '{"full_name": "Budget"}', now(), now())
$$);
select is((select name from public.users where id = 'e2000000-0000-4000-8000-000000000002'),
  'Budget', 'a garbage lock budget setting neither fails the sign-up nor stops the sync');

select * from finish();
rollback;
