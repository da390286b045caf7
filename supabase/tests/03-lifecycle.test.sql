-- A user's life after sign-up: email change, metadata change, soft delete, hard
-- delete, anonymous -> permanent, app edits that sync must not overwrite, and
-- where the role comes from. All auth writes as supabase_auth_admin (search_path auth).
begin;
\ir _helpers.psql
select plan(27);

call tests.as_auth($$
insert into users (instance_id, id, aud, role, email, email_confirmed_at, raw_app_meta_data, raw_user_meta_data, created_at, updated_at, is_anonymous)
values
  ('00000000-0000-0000-0000-000000000000', 'b0000000-0000-4000-8000-000000000001', 'authenticated', 'authenticated',
   'liz@example.com', now(), '{"provider": "email", "providers": ["email"]}', '{"full_name": "Liz Old"}', now(), now(), false),
  ('00000000-0000-0000-0000-000000000000', 'b0000000-0000-4000-8000-000000000002', 'authenticated', 'authenticated',
   'sam@example.com', now(), '{"provider": "google", "providers": ["google"]}',
   '{"full_name": "Sam Google", "avatar_url": "https://example.com/sam-1.png"}', now(), now(), false),
  ('00000000-0000-0000-0000-000000000000', 'b0000000-0000-4000-8000-000000000003', 'authenticated', 'authenticated',
   null, null, '{}', '{}', now(), now(), true),
  ('00000000-0000-0000-0000-000000000000', 'b0000000-0000-4000-8000-000000000004', 'authenticated', 'authenticated',
   'gone@example.com', now(), '{"provider": "email", "providers": ["email"]}', '{}', now(), now(), false),
  -- role attempts
  ('00000000-0000-0000-0000-000000000000', 'b0000000-0000-4000-8000-000000000005', 'authenticated', 'authenticated',
   'sneaky@example.com', now(), '{"provider": "email", "providers": ["email"]}', '{"role": "admin", "full_name": "Sneaky"}', now(), now(), false),
  ('00000000-0000-0000-0000-000000000000', 'b0000000-0000-4000-8000-000000000006', 'authenticated', 'authenticated',
   'boss@example.com', now(), '{"provider": "email", "providers": ["email"], "role": "admin"}', '{}', now(), now(), false),
  ('00000000-0000-0000-0000-000000000000', 'b0000000-0000-4000-8000-000000000007', 'authenticated', 'authenticated',
   'odd@example.com', now(), '{"provider": "email", "providers": ["email"], "role": "superuser"}', '{}', now(), now(), false)
$$);

-- email change confirmed
call tests.as_auth($$
update users set email = 'liz.new@example.com', email_change = '', email_change_token_new = ''
where id = 'b0000000-0000-4000-8000-000000000001'
$$);
select is((select email from public.users where id = 'b0000000-0000-4000-8000-000000000001'),
  'liz.new@example.com', 'an email change is copied to the profile');
select is((select name from public.users where id = 'b0000000-0000-4000-8000-000000000001'),
  'Liz Old', 'the name is kept (it comes from metadata, not from the email)');

-- metadata change (updateUser({data}))
call tests.as_auth($$
update users set raw_user_meta_data = raw_user_meta_data || '{"full_name": "Liz New"}'
where id = 'b0000000-0000-4000-8000-000000000001'
$$);
select is((select name from public.users where id = 'b0000000-0000-4000-8000-000000000001'),
  'Liz New', 'a metadata change is copied while the name was never edited');

-- anonymous -> permanent (updateUser({email}) then confirmation)
call tests.as_auth($$
update users set is_anonymous = false, email = 'was.anon@example.com', email_confirmed_at = now(),
  raw_app_meta_data = '{"provider": "email", "providers": ["email"]}'
where id = 'b0000000-0000-4000-8000-000000000003'
$$);
select results_eq(
  $$select is_anonymous, email, name, provider from public.users where id = 'b0000000-0000-4000-8000-000000000003'$$,
  $$values (false, 'was.anon@example.com', 'was.anon', 'email')$$,
  'an anonymous user turned permanent gets email, name and provider');

-- soft delete: Auth sets deleted_at and obfuscates the email
call tests.as_auth($$
update users set deleted_at = '2026-03-03 03:03:03+00', email = 'deleted-b0000004@obfuscated.invalid'
where id = 'b0000000-0000-4000-8000-000000000004'
$$);
select results_eq(
  $$select deleted_at, email from public.users where id = 'b0000000-0000-4000-8000-000000000004'$$,
  $$values ('2026-03-03 03:03:03+00'::timestamptz, 'deleted-b0000004@obfuscated.invalid')$$,
  'soft delete keeps the profile, with deleted_at set and the obfuscated email');

-- hard delete
call tests.as_auth($$delete from users where id = 'b0000000-0000-4000-8000-000000000004'$$);
select is((select count(*)::int from public.users where id = 'b0000000-0000-4000-8000-000000000004'),
  0, 'hard delete removes the profile');

-- app edits of name and avatar are never overwritten by sync ---------------
set local role authenticated;
set local request.jwt.claims = '{"sub": "b0000000-0000-4000-8000-000000000002", "role": "authenticated"}';
update public.users set name = 'Samantha' where id = 'b0000000-0000-4000-8000-000000000002';
reset role;
select isnt((select name_edited_at from public.users where id = 'b0000000-0000-4000-8000-000000000002'),
  null, 'the app edit is remembered');
call tests.as_auth($$
update users set raw_user_meta_data = raw_user_meta_data
  || '{"full_name": "Sam From Google Again", "avatar_url": "https://example.com/sam-2.png"}',
  last_sign_in_at = now()
where id = 'b0000000-0000-4000-8000-000000000002'
$$);
select results_eq(
  $$select name, avatar_url from public.users where id = 'b0000000-0000-4000-8000-000000000002'$$,
  $$values ('Samantha', 'https://example.com/sam-2.png')$$,
  'OAuth metadata merge at sign-in keeps the edited name; the unedited avatar follows');
select is(user_sync.sync_user('b0000000-0000-4000-8000-000000000002'), 'unchanged',
  'sync_user sees the edited profile as in sync');
select is((user_sync.reconcile() ->> 'updated')::int, 0, 'reconcile finds nothing to update');
select is((select name from public.users where id = 'b0000000-0000-4000-8000-000000000002'),
  'Samantha', 'the edited name survives reconcile');

-- an edit of the avatar is kept too; clearing the marker follows metadata again
set local role authenticated;
set local request.jwt.claims = '{"sub": "b0000000-0000-4000-8000-000000000002", "role": "authenticated"}';
update public.users set avatar_url = 'https://cdn.example.com/me.png' where id = 'b0000000-0000-4000-8000-000000000002';
reset role;
call tests.as_auth($$
update users set raw_user_meta_data = raw_user_meta_data || '{"avatar_url": "https://example.com/sam-3.png"}'
where id = 'b0000000-0000-4000-8000-000000000002'
$$);
select is((select avatar_url from public.users where id = 'b0000000-0000-4000-8000-000000000002'),
  'https://cdn.example.com/me.png', 'the edited avatar is kept');
update public.users set name_edited_at = null where id = 'b0000000-0000-4000-8000-000000000002';
select is(user_sync.sync_user('b0000000-0000-4000-8000-000000000002'), 'updated',
  'clearing name_edited_at makes the profile drift back to metadata');
select is((select name from public.users where id = 'b0000000-0000-4000-8000-000000000002'),
  'Sam From Google Again', 'the name follows metadata again');

-- where the role comes from -------------------------------------------------
select is((select role from public.users where id = 'b0000000-0000-4000-8000-000000000005'),
  'user', 'a role in raw_user_meta_data (user-controlled) is ignored');
select is((select role from public.users where id = 'b0000000-0000-4000-8000-000000000006'),
  'admin', 'a known role in raw_app_meta_data is used');
select is((select role from public.users where id = 'b0000000-0000-4000-8000-000000000007'),
  'user', 'an unknown role in raw_app_meta_data falls back to the default');

call tests.as_auth($$
update users set raw_user_meta_data = '{"role": "admin", "full_name": "Sneaky"}', updated_at = now()
where id = 'b0000000-0000-4000-8000-000000000005';
update users set raw_app_meta_data = raw_app_meta_data - 'role'
where id = 'b0000000-0000-4000-8000-000000000006'
$$);
select is((select role from public.users where id = 'b0000000-0000-4000-8000-000000000005'),
  'user', 'updateUser({data: {role: admin}}) does not make an admin');
select is((select role from public.users where id = 'b0000000-0000-4000-8000-000000000006'),
  'user', 'removing the role from app metadata demotes to the default');

-- the configured default role applies to new and existing profiles
insert into user_sync.roles (role, description) values ('member', 'test default');
update user_sync.config set default_role = 'member';
select is((user_sync.reconcile() ->> 'updated')::int >= 5, true, 'changing the default role drifts profiles without an app-metadata role');
select is((select role from public.users where id = 'b0000000-0000-4000-8000-000000000007'),
  'member', 'the configured default role is applied by reconcile');
update user_sync.config set default_role = 'user';
select lives_ok($$select user_sync.reconcile()$$, 'default role restored');

-- an admin's role change in the app is written back to app metadata
-- (as the SQL editor runs it: no JWT; the claims set above would make it a user's request)
set local request.jwt.claims = '';
update public.users set role = 'admin' where id = 'b0000000-0000-4000-8000-000000000007';
select is((select raw_app_meta_data ->> 'role' from auth.users where id = 'b0000000-0000-4000-8000-000000000007'),
  'admin', 'a role set in public.users is written back to raw_app_meta_data');
select is((select raw_app_meta_data ->> 'provider' from auth.users where id = 'b0000000-0000-4000-8000-000000000007'),
  'email', 'the write-back keeps the rest of app metadata');
select is(user_sync.sync_user('b0000000-0000-4000-8000-000000000007'), 'unchanged',
  'after the write-back the role is in sync (reconcile will not undo it)');
select throws_ok(
  $$update public.users set role = 'emperor' where id = 'b0000000-0000-4000-8000-000000000007'$$,
  '23503', null, 'an unknown role is refused');

-- sync_user on a vanished auth user (foreign key bypassed, as in a restore)
set local session_replication_role = replica;
delete from auth.users where id = 'b0000000-0000-4000-8000-000000000005';
set local session_replication_role = origin;
select is(user_sync.sync_user('b0000000-0000-4000-8000-000000000005'), 'deleted',
  'sync_user removes a profile whose auth user is gone');

select * from finish();
rollback;
