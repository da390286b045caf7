-- A sign-up inserts its profile in one statement, from the row being inserted. What a
-- new user cannot have (a profile, an open error) is not looked up; when it is there
-- after all, the sign-up takes the general path and still ends with the right profile.
begin;
\ir _helpers.psql
select plan(6);

-- An orphan profile: an import under session_replication_role = replica (no foreign
-- key checks) left a profile for a user that Auth creates only now.
set local session_replication_role = replica;
insert into public.users (id, email, name, role, provider)
values ('e3000000-0000-4000-8000-000000000001', 'imported@example.com', 'Imported', 'admin', 'email');
set local session_replication_role = origin;

call tests.as_auth($$
insert into users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
values ('e3000000-0000-4000-8000-000000000001', 'authenticated', 'authenticated', 'orphan@example.com',
        '{"provider": "github", "providers": ["github"]}', '{"full_name": "Signed Up Over An Orphan"}', now(), now()),
       ('e3000000-0000-4000-8000-000000000002', 'authenticated', 'authenticated', 'plain@example.com',
        '{"provider": "email", "providers": ["email"], "role": "admin"}', '{"user_name": "plain"}', now(), now())
$$);

select results_eq(
  $$select email, name, role, provider from public.users where id = 'e3000000-0000-4000-8000-000000000001'$$,
  $$values ('orphan@example.com', 'Signed Up Over An Orphan', 'user', 'github')$$,
  'a sign-up over an orphan profile brings it in line with the new user (role from app metadata, not the import)');
select is((select count(*)::int from user_sync.errors where user_id::text like 'e3000000-%'), 0,
  'and records no error');
select results_eq(
  $$select email, name, role, provider, providers from public.users where id = 'e3000000-0000-4000-8000-000000000002'$$,
  $$values ('plain@example.com', 'plain', 'admin', 'email', '{email}'::text[])$$,
  'a sign-up in the same statement gets its derived profile (role from app metadata)');
select is((user_sync.status() ->> 'drifted')::int + (user_sync.status() ->> 'missing')::int, 0,
  'status() finds nothing missing or drifted');

-- A sign-up's wait for a lock counts against the transaction's 2 s: the one-statement
-- insert waits at most 10 ms, then the general path has what is left.
set local user_sync.lock_budget_ms = '0';
call tests.as_auth($$
insert into users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
values ('e3000000-0000-4000-8000-000000000003', 'authenticated', 'authenticated', 'nobudget@example.com',
        '{"provider": "email", "providers": ["email"]}', '{"full_name": "No Budget Left"}', now(), now())
$$);
select is((select name from public.users where id = 'e3000000-0000-4000-8000-000000000003'), 'No Budget Left',
  'a sign-up that finds nothing locked needs no budget: its profile is inserted with none left');
select is(current_setting('user_sync.lock_budget_ms'), '0', 'and the budget is left as it was');

select * from finish();
rollback;
