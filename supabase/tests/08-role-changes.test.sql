-- No role change is lost to a read-modify-write of raw_app_meta_data (issue 11, item 2).
-- GoTrue reads the auth user, changes app metadata in memory and writes all of it
-- back (OAuth sign-in of an existing user, admin.updateUserById). Each case below
-- replays that interleaving: a copy is read, someone changes the role, the copy is
-- written back (as supabase_auth_admin, as Auth does). tests/sql/role-change-race.test.ts
-- replays it with real concurrent sessions.
begin;
\ir _helpers.psql
select plan(26);

insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
values
  ('e0000000-0000-4000-8000-00000000000a', 'authenticated', 'authenticated', 'admin-a@example.com',
   '{"provider": "email", "providers": ["email"], "role": "admin"}', '{}', now(), now()),
  ('e0000000-0000-4000-8000-00000000000b', 'authenticated', 'authenticated', 'boss-b@example.com',
   '{"provider": "google", "providers": ["google"], "role": "admin"}', '{"full_name": "Boss B"}', now(), now()),
  ('e0000000-0000-4000-8000-00000000000c', 'authenticated', 'authenticated', 'carl@example.com',
   '{"provider": "google", "providers": ["google"]}', '{}', now(), now());
insert into user_sync.roles (role, description) values ('editor', 'test role');

-- GoTrue's copy of b, read before the admin acts
create temp table copy_1 on commit drop as
  select raw_app_meta_data as m from auth.users where id = 'e0000000-0000-4000-8000-00000000000b';
grant select on copy_1 to supabase_auth_admin;

-- 1. Data API: admin a demotes b (write-back to raw_app_meta_data)
set local role authenticated;
set local request.jwt.claims = '{"sub": "e0000000-0000-4000-8000-00000000000a", "role": "authenticated", "aud": "authenticated"}';
select results_eq($$update public.users set role = 'user' where id = 'e0000000-0000-4000-8000-00000000000b' returning role$$,
  $$values ('user')$$, 'an admin demotes b through the Data API');
reset role;
set local request.jwt.claims = '';
select is((select raw_app_meta_data -> 'user_sync_role_stamp' ->> 'v' from auth.users where id = 'e0000000-0000-4000-8000-00000000000b'),
  '1', 'the role change is stamped (version 1)');
select is((select raw_app_meta_data -> 'user_sync_role_stamp' ->> 'from' from auth.users where id = 'e0000000-0000-4000-8000-00000000000b'),
  'admin', 'the stamp remembers the role it replaced');

-- ... then GoTrue writes its copy back, plus a provider change (an OAuth sign-in)
call tests.as_auth($$
update users set raw_app_meta_data = (select m from copy_1) || '{"providers": ["google", "github"]}', last_sign_in_at = now()
where id = 'e0000000-0000-4000-8000-00000000000b'
$$);
select is((select raw_app_meta_data ->> 'role' from auth.users where id = 'e0000000-0000-4000-8000-00000000000b'),
  'user', 'the demotion survives GoTrue writing back its older copy');
select is((select raw_app_meta_data -> 'providers' from auth.users where id = 'e0000000-0000-4000-8000-00000000000b'),
  '["google", "github"]'::jsonb, 'the rest of GoTrue''s write lands');
select is((select role from public.users where id = 'e0000000-0000-4000-8000-00000000000b'),
  'user', 'the profile follows: user');
select is(user_sync.auth_role('e0000000-0000-4000-8000-00000000000b'), 'user', 'the next token says user');

-- 2. Auth admin API: updateUserById(app_metadata: {role: admin}) reads the current
--    copy, merges the role, writes it all back: a role change, it lands
create temp table copy_2 on commit drop as
  select raw_app_meta_data as m from auth.users where id = 'e0000000-0000-4000-8000-00000000000b';
grant select on copy_2 to supabase_auth_admin;
call tests.as_auth($$
update users set raw_app_meta_data = (select m from copy_2) || '{"role": "admin"}'
where id = 'e0000000-0000-4000-8000-00000000000b'
$$);
select is((select raw_app_meta_data ->> 'role' from auth.users where id = 'e0000000-0000-4000-8000-00000000000b'),
  'admin', 'a role change through the Auth admin API lands');
select is((select raw_app_meta_data -> 'user_sync_role_stamp' ->> 'v' from auth.users where id = 'e0000000-0000-4000-8000-00000000000b'),
  '2', 'and is stamped (version 2)');
select is((select role from public.users where id = 'e0000000-0000-4000-8000-00000000000b'), 'admin', 'the profile follows: admin');

-- 3. a stale stamped copy (version 1, role user) written back without a role change
call tests.as_auth($$
update users set raw_app_meta_data = (select m from copy_2) || '{"provider": "github"}'
where id = 'e0000000-0000-4000-8000-00000000000b'
$$);
select is((select raw_app_meta_data ->> 'role' from auth.users where id = 'e0000000-0000-4000-8000-00000000000b'),
  'admin', 'a stale stamped copy does not undo the newer role change');
select is((select raw_app_meta_data ->> 'provider' from auth.users where id = 'e0000000-0000-4000-8000-00000000000b'),
  'github', 'its other change lands');
select is((select raw_app_meta_data -> 'user_sync_role_stamp' ->> 'v' from auth.users where id = 'e0000000-0000-4000-8000-00000000000b'),
  '2', 'the current stamp is kept');

-- 4. SQL editor: a direct update of auth.users is a role change
update auth.users set raw_app_meta_data = raw_app_meta_data || '{"role": "user"}'
where id = 'e0000000-0000-4000-8000-00000000000b';
select is((select raw_app_meta_data ->> 'role' from auth.users where id = 'e0000000-0000-4000-8000-00000000000b'),
  'user', 'a role change in the SQL editor lands');
select is((select role from public.users where id = 'e0000000-0000-4000-8000-00000000000b'), 'user', 'the profile follows');

-- 5. two admins disagree: both read version 3 (user); one sets admin, then the other editor
create temp table copy_3 on commit drop as
  select raw_app_meta_data as m from auth.users where id = 'e0000000-0000-4000-8000-00000000000b';
grant select on copy_3 to supabase_auth_admin;
call tests.as_auth($$
update users set raw_app_meta_data = (select m from copy_3) || '{"role": "admin"}'
where id = 'e0000000-0000-4000-8000-00000000000b';
update users set raw_app_meta_data = (select m from copy_3) || '{"role": "editor"}'
where id = 'e0000000-0000-4000-8000-00000000000b'
$$);
select is((select raw_app_meta_data ->> 'role' from auth.users where id = 'e0000000-0000-4000-8000-00000000000b'),
  'editor', 'two admins disagree: the role change committed last wins');
select is((select raw_app_meta_data -> 'user_sync_role_stamp' ->> 'v' from auth.users where id = 'e0000000-0000-4000-8000-00000000000b'),
  '5', 'each change got its own version');
select is((select role from public.users where id = 'e0000000-0000-4000-8000-00000000000b'), 'editor', 'the profile follows the last change');

-- 6. a sign-in (only last_sign_in_at) leaves the metadata alone
create temp table before_sign_in on commit drop as
  select raw_app_meta_data as m from auth.users where id = 'e0000000-0000-4000-8000-00000000000b';
call tests.as_auth($$update users set last_sign_in_at = now() where id = 'e0000000-0000-4000-8000-00000000000b'$$);
select is((select raw_app_meta_data from auth.users where id = 'e0000000-0000-4000-8000-00000000000b'),
  (select m from before_sign_in), 'a sign-in changes nothing in app metadata');

-- 7. a user without any role in app metadata (the default), promoted, then a copy
--    from before the promotion (no role key, no stamp) is written back
create temp table copy_c on commit drop as
  select raw_app_meta_data as m from auth.users where id = 'e0000000-0000-4000-8000-00000000000c';
grant select on copy_c to supabase_auth_admin;
set local role authenticated;
set local request.jwt.claims = '{"sub": "e0000000-0000-4000-8000-00000000000a", "role": "authenticated", "aud": "authenticated"}';
select results_eq($$update public.users set role = 'admin' where id = 'e0000000-0000-4000-8000-00000000000c' returning role$$,
  $$values ('admin')$$, 'an admin promotes c, who had no role in app metadata');
reset role;
set local request.jwt.claims = '';
call tests.as_auth($$
update users set raw_app_meta_data = (select m from copy_c) || '{"providers": ["google", "github"]}'
where id = 'e0000000-0000-4000-8000-00000000000c'
$$);
select is((select raw_app_meta_data ->> 'role' from auth.users where id = 'e0000000-0000-4000-8000-00000000000c'),
  'admin', 'a copy from before the first stamped change does not undo it');
select is((select role from public.users where id = 'e0000000-0000-4000-8000-00000000000c'), 'admin', 'the profile says admin');

-- ... even after a second change: a copy from before both still carries the base role
update auth.users set raw_app_meta_data = raw_app_meta_data || '{"role": "editor"}'
where id = 'e0000000-0000-4000-8000-00000000000c';
call tests.as_auth($$
update users set raw_app_meta_data = (select m from copy_c) || '{"provider": "github"}'
where id = 'e0000000-0000-4000-8000-00000000000c'
$$);
select is((select raw_app_meta_data ->> 'role' from auth.users where id = 'e0000000-0000-4000-8000-00000000000c'),
  'editor', 'a copy from before two stamped changes does not undo them');
update auth.users set raw_app_meta_data = raw_app_meta_data || '{"role": "admin"}'
where id = 'e0000000-0000-4000-8000-00000000000c';

-- 8. the stamp is ours: removing it or making one up without a role change restores it
update auth.users set raw_app_meta_data = raw_app_meta_data - 'user_sync_role_stamp'
where id = 'e0000000-0000-4000-8000-00000000000c';
select is((select raw_app_meta_data -> 'user_sync_role_stamp' ->> 'v' from auth.users where id = 'e0000000-0000-4000-8000-00000000000c'),
  '3', 'a removed stamp comes back');
update auth.users set raw_app_meta_data = raw_app_meta_data || '{"user_sync_role_stamp": {"v": 99, "role": "admin"}}'
where id = 'e0000000-0000-4000-8000-00000000000c';
select is((select raw_app_meta_data -> 'user_sync_role_stamp' ->> 'v' from auth.users where id = 'e0000000-0000-4000-8000-00000000000c'),
  '3', 'a made-up stamp is replaced by the real one');

-- 9. no WHEN clause and no column list (Auth must be able to ALTER its columns)
select is((select count(*)::int from pg_trigger where tgname = 'user_sync_on_auth_user_update'
           and tgrelid = 'auth.users'::regclass and tgqual is null and tgattr = ''::int2vector),
  1, 'the trigger that stamps depends on no auth.users column');

select * from finish();
rollback;
