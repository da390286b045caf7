-- Row level security as the Data API sees it: `set local role` plus
-- request.jwt.claims, exactly what PostgREST does per request.
begin;
select plan(32);

insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at, deleted_at)
values
  ('d0000000-0000-4000-8000-00000000000a', 'authenticated', 'authenticated', 'alice@example.com',
   '{"provider": "email", "providers": ["email"]}', '{"full_name": "Alice"}', now(), now(), null),
  ('d0000000-0000-4000-8000-00000000000b', 'authenticated', 'authenticated', 'bob@example.com',
   '{"provider": "email", "providers": ["email"]}', '{"full_name": "Bob"}', now(), now(), null),
  ('d0000000-0000-4000-8000-00000000000c', 'authenticated', 'authenticated', 'carol@example.com',
   '{"provider": "email", "providers": ["email"], "role": "admin"}', '{"full_name": "Carol Admin"}', now(), now(), null),
  ('d0000000-0000-4000-8000-00000000000d', 'authenticated', 'authenticated', 'dave@example.com',
   '{"provider": "email", "providers": ["email"]}', '{"full_name": "Dave"}', now(), now(), now());

-- anon --------------------------------------------------------------------
set local role anon;
set local request.jwt.claims = '{"role": "anon"}';
select throws_ok($$select count(*) from public.users$$, '42501', null, 'anon cannot read profiles');
select throws_ok($$update public.users set name = 'x'$$, '42501', null, 'anon cannot update profiles');
select throws_ok($$select user_sync.reconcile()$$, '42501', null, 'anon cannot call reconcile');
reset role;

-- alice, a plain user -------------------------------------------------------
set local role authenticated;
set local request.jwt.claims = '{"sub": "d0000000-0000-4000-8000-00000000000a", "role": "authenticated", "aud": "authenticated"}';
select results_eq($$select id::text from public.users$$, $$values ('d0000000-0000-4000-8000-00000000000a')$$,
  'a user sees only their own profile');
select is_empty($$select 1 from public.users where id = 'd0000000-0000-4000-8000-00000000000b'$$,
  'a user cannot read another user''s profile');
select results_eq($$with u as (update public.users set name = 'Alice Edited' where id = 'd0000000-0000-4000-8000-00000000000a' returning name) select name from u$$,
  $$values ('Alice Edited')$$, 'a user can edit their own name');
select results_eq($$with u as (update public.users set avatar_url = 'https://example.com/alice.png' where id = 'd0000000-0000-4000-8000-00000000000a' returning avatar_url) select avatar_url from u$$,
  $$values ('https://example.com/alice.png')$$, 'a user can edit their own avatar_url');
select is_empty($$update public.users set name = 'Hacked' where id = 'd0000000-0000-4000-8000-00000000000b' returning 1$$,
  'a user cannot edit another user''s profile');
select throws_ok($$update public.users set role = 'admin' where id = 'd0000000-0000-4000-8000-00000000000a'$$,
  '42501', 'only admins can change roles', 'a user cannot raise their own role');
select throws_ok($$update public.users set role = 'admin', name = 'Sneaky' where id = 'd0000000-0000-4000-8000-00000000000a'$$,
  '42501', 'only admins can change roles', 'not even alongside an allowed column');
select throws_ok($$update public.users set email = 'alice@evil.example' where id = 'd0000000-0000-4000-8000-00000000000a'$$,
  '42501', null, 'a user cannot change an auth-owned column (email)');
select throws_ok($$update public.users set deleted_at = null, synced_at = now() where id = 'd0000000-0000-4000-8000-00000000000a'$$,
  '42501', null, 'a user cannot write sync columns');
select throws_ok($$insert into public.users (id, email) values ('d0000000-0000-4000-8000-00000000000e', 'new@example.com')$$,
  '42501', null, 'a user cannot insert profiles');
select throws_ok($$delete from public.users where id = 'd0000000-0000-4000-8000-00000000000a'$$,
  '42501', null, 'a user cannot delete profiles');
select throws_ok($$select user_sync.sync_user('d0000000-0000-4000-8000-00000000000a')$$, '42501', null, 'a user cannot call sync_user');
select throws_ok($$select user_sync.reconcile()$$, '42501', null, 'a user cannot call reconcile');
select throws_ok($$select user_sync.status()$$, '42501', null, 'a user cannot call status');
select throws_ok($$select * from user_sync.errors$$, '42501', null, 'a user cannot read the error log');
select throws_ok($$update auth.users set raw_app_meta_data = '{"role": "admin"}' where id = 'd0000000-0000-4000-8000-00000000000a'$$,
  '42501', null, 'a user cannot write auth.users');
reset role;
select is((select role from public.users where id = 'd0000000-0000-4000-8000-00000000000a'), 'user', 'alice is still a plain user');
select is((select name from public.users where id = 'd0000000-0000-4000-8000-00000000000b'), 'Bob', 'bob''s profile is untouched');

-- a forged JWT role claim changes nothing: the profile decides
set local role authenticated;
set local request.jwt.claims = '{"sub": "d0000000-0000-4000-8000-00000000000a", "role": "authenticated", "user_role": "admin", "app_metadata": {"role": "admin"}}';
select is((select count(*)::int from public.users), 1, 'admin-looking claims do not make a user an admin');
reset role;

-- dave, soft-deleted ---------------------------------------------------------
set local role authenticated;
set local request.jwt.claims = '{"sub": "d0000000-0000-4000-8000-00000000000d", "role": "authenticated"}';
select is_empty($$select 1 from public.users$$, 'a soft-deleted user''s profile is hidden from them');
reset role;

-- carol, an admin (role from app metadata) ----------------------------------
set local role authenticated;
set local request.jwt.claims = '{"sub": "d0000000-0000-4000-8000-00000000000c", "role": "authenticated"}';
select is((select count(*)::int from public.users where id::text like 'd0000000-%'), 4, 'an admin reads every profile, soft-deleted ones too');
select results_eq($$with u as (update public.users set role = 'admin' where id = 'd0000000-0000-4000-8000-00000000000b' returning role) select role from u$$,
  $$values ('admin')$$, 'an admin can change another user''s role');
select throws_ok($$update public.users set role = 'overlord' where id = 'd0000000-0000-4000-8000-00000000000b'$$,
  '23503', null, 'an admin cannot set an unknown role');
select throws_ok($$update public.users set email = 'x@example.com' where id = 'd0000000-0000-4000-8000-00000000000b'$$,
  '42501', null, 'an admin cannot change auth-owned columns either');
select throws_ok($$delete from public.users where id = 'd0000000-0000-4000-8000-00000000000b'$$,
  '42501', null, 'an admin cannot delete profiles (Auth owns their lifecycle)');
reset role;
select is((select raw_app_meta_data ->> 'role' from auth.users where id = 'd0000000-0000-4000-8000-00000000000b'),
  'admin', 'the admin''s role change reached app metadata');

-- a demoted admin loses admin reads at once
update public.users set role = 'user' where id = 'd0000000-0000-4000-8000-00000000000c';
set local role authenticated;
set local request.jwt.claims = '{"sub": "d0000000-0000-4000-8000-00000000000c", "role": "authenticated"}';
select is((select count(*)::int from public.users), 1, 'a demoted admin sees only their own profile again');
reset role;

-- service_role (secret key) bypasses RLS ------------------------------------
set local role service_role;
select is((select count(*)::int from public.users where id::text like 'd0000000-%'), 4, 'service_role reads every profile');
select lives_ok($$update public.users set name = 'Set By Server' where id = 'd0000000-0000-4000-8000-00000000000b'$$,
  'service_role can edit profiles');
reset role;

select * from finish();
rollback;
