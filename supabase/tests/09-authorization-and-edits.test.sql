-- Issue 11, items 1 and 5, as the Data API runs requests (`set local role` plus
-- request.jwt.claims):
--  * authorization reads Auth's truth (auth.users), whatever the mirror says;
--  * a user's own edit of name / avatar_url meets the rules of a derived value, or is
--    refused with a named check and nothing is written;
--  * the guard judges role changes by the request's JWT role too, so a
--    security-definer function of the app (owned by postgres) cannot raise its
--    caller's role.
begin;
select plan(49);

insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
values
  ('f0000000-0000-4000-8000-00000000000a', 'authenticated', 'authenticated', 'alice@example.com',
   '{"provider": "email", "providers": ["email"]}', '{"full_name": "Alice"}', now(), now()),
  ('f0000000-0000-4000-8000-00000000000c', 'authenticated', 'authenticated', 'carol@example.com',
   '{"provider": "email", "providers": ["email"], "role": "admin"}', '{"full_name": "Carol"}', now(), now()),
  ('f0000000-0000-4000-8000-00000000000d', 'authenticated', 'authenticated', 'dan@example.com',
   '{"provider": "email", "providers": ["email"], "role": "admin"}', '{"full_name": "Dan"}', now(), now()),
  ('f0000000-0000-4000-8000-00000000000e', 'authenticated', 'authenticated', 'eve@example.com',
   '{"provider": "email", "providers": ["email"], "role": "admin"}', '{"full_name": "Eve"}', now(), now());

create function pg_temp.is_admin_as(p_user uuid) returns boolean language plpgsql as $$
declare v boolean;
begin
  perform set_config('request.jwt.claims', json_build_object('sub', p_user, 'role', 'authenticated', 'aud', 'authenticated')::text, true);
  set local role authenticated;
  v := user_sync.is_admin();
  reset role;
  perform set_config('request.jwt.claims', '', true);
  return v;
end $$;

-- 1. Authorization from Auth's truth -----------------------------------------
select ok(pg_temp.is_admin_as('f0000000-0000-4000-8000-00000000000c'), 'carol is an admin');
-- Auth changes behind the mirror's back (the sync trigger does not run: a stale mirror,
-- as when the trigger gave up on a locked profile)
set local session_replication_role = replica;
update auth.users set raw_app_meta_data = raw_app_meta_data || '{"role": "user"}' where id = 'f0000000-0000-4000-8000-00000000000c';
update auth.users set deleted_at = now() where id = 'f0000000-0000-4000-8000-00000000000d';
update auth.users set banned_until = now() + interval '1 day' where id = 'f0000000-0000-4000-8000-00000000000e';
set local session_replication_role = origin;
select is((select count(*)::int from public.users where id in ('f0000000-0000-4000-8000-00000000000c',
  'f0000000-0000-4000-8000-00000000000d', 'f0000000-0000-4000-8000-00000000000e') and role = 'admin' and deleted_at is null),
  3, 'the mirror still says admin for all three');
select ok(not pg_temp.is_admin_as('f0000000-0000-4000-8000-00000000000c'), 'a demoted admin fails is_admin() at once');
select ok(not pg_temp.is_admin_as('f0000000-0000-4000-8000-00000000000d'), 'a soft-deleted admin fails is_admin() at once');
select ok(not pg_temp.is_admin_as('f0000000-0000-4000-8000-00000000000e'), 'a banned admin fails is_admin() at once');
select is(user_sync.auth_role('f0000000-0000-4000-8000-00000000000c'), 'user', 'auth_role: the demoted admin is a user');
select is(user_sync.auth_role('f0000000-0000-4000-8000-00000000000d'), null, 'auth_role: a soft-deleted user has no role');
select is(user_sync.auth_role('f0000000-0000-4000-8000-00000000000e'), null, 'auth_role: a banned user has no role');
select is(user_sync.auth_role('f0000000-0000-4000-8000-0000000000ff'), null, 'auth_role: an unknown user has no role');
set local role authenticated;
set local request.jwt.claims = '{"sub": "f0000000-0000-4000-8000-00000000000c", "role": "authenticated", "aud": "authenticated"}';
select is((select count(*)::int from public.users where id::text like 'f0000000-%'), 1,
  'RLS: the demoted admin reads only their own row, though the mirror says admin');
select is_empty($$update public.users set role = 'admin' where id = 'f0000000-0000-4000-8000-00000000000a' returning 1$$,
  'RLS: the demoted admin cannot touch another row');
reset role;
set local request.jwt.claims = '';
-- an expired ban and an undone demotion count again at once
set local session_replication_role = replica;
update auth.users set banned_until = now() - interval '1 minute' where id = 'f0000000-0000-4000-8000-00000000000e';
update auth.users set raw_app_meta_data = raw_app_meta_data || '{"role": "admin"}' where id = 'f0000000-0000-4000-8000-00000000000c';
set local session_replication_role = origin;
select ok(pg_temp.is_admin_as('f0000000-0000-4000-8000-00000000000e'), 'a ban that has expired no longer counts');
select ok(pg_temp.is_admin_as('f0000000-0000-4000-8000-00000000000c'), 'a re-promotion counts at once');
select ok(not pg_temp.is_admin_as(null), 'no caller: no admin');
select is((select count(*)::int from pg_policies where tablename = 'users' and schemaname = 'public'
           and (qual ~ 'SELECT user_sync.is_admin\(\)' or with_check ~ 'SELECT user_sync.is_admin\(\)')), 2,
  'policies ask is_admin() once per statement (select ... as an init plan)');

-- 5. Hostile self-edits -------------------------------------------------------
set local role authenticated;
set local request.jwt.claims = '{"sub": "f0000000-0000-4000-8000-00000000000a", "role": "authenticated", "aud": "authenticated"}';
select throws_ok(format($$update public.users set name = %L where id = 'f0000000-0000-4000-8000-00000000000a'$$, n),
  '23514', 'new row for relation "users" violates check constraint "users_name_clean"',
  format('a name with %s is refused', what))
from (values
  (E'Admin\u202e', 'a bidi override (U+202E)'),
  (E'a\u202ab', 'a bidi embedding (U+202A)'),
  (E'a\u2066b', 'a bidi isolate (U+2066)'),
  (E'a\u2069', 'a bidi isolate end (U+2069)'),
  (E'zero\u200bwidth', 'a zero-width space (U+200B)'),
  (E'a\u200fb', 'a right-to-left mark (U+200F)'),
  (E'word\u2060joiner', 'a word joiner (U+2060)'),
  (E'line\u2028sep', 'a line separator (U+2028)'),
  (E'para\u2029sep', 'a paragraph separator (U+2029)'),
  (E'\ufeffBOM', 'a BOM (U+FEFF)'),
  (E'bell\u0007', 'a control character'),
  (E'c1\u0085', 'a C1 control character'),
  ('   ', 'only whitespace'),
  (E'\u3000', 'only ideographic space'),
  (' Alice', 'leading whitespace'),
  (E'Alice\u00a0', 'trailing no-break space'),
  ('', 'nothing at all')
) as hostile (n, what);
select throws_ok($$update public.users set name = repeat('x', 201) where id = 'f0000000-0000-4000-8000-00000000000a'$$,
  '23514', 'name is longer than 200 characters (user_sync.config.name_max_length)',
  'a name longer than name_max_length is refused');
select throws_ok(format($$update public.users set avatar_url = %L where id = 'f0000000-0000-4000-8000-00000000000a'$$, u),
  '23514', 'avatar_url must be an http(s) URL without spaces, control characters, quotes or angle brackets',
  format('an avatar_url %s is refused', what))
from (values
  ('https://x.example/a.png"onerror="alert(1)', 'with a double quote'),
  ('https://x.example/a.png''', 'with a single quote'),
  ('https://x.example/<script>', 'with angle brackets'),
  ('https://x.example/a>b', 'with >'),
  ('javascript:alert(1)', 'that is javascript:'),
  ('data:image/png;base64,AA', 'that is a data: URL'),
  ('https://x.example/a b', 'with a space')
) as hostile (u, what);
reset role;
set local request.jwt.claims = '';
select is((select (name, avatar_url, name_edited_at, avatar_url_edited_at)::text from public.users where id = 'f0000000-0000-4000-8000-00000000000a'),
  '(Alice,,,)', 'nothing was written by any refused edit');
set local role authenticated;
set local request.jwt.claims = '{"sub": "f0000000-0000-4000-8000-00000000000a", "role": "authenticated", "aud": "authenticated"}';
select results_eq($$update public.users set name = E'Zoë O\u2019Brien 山田', avatar_url = 'https://cdn.example/a.png?s=96&v=2'
  where id = 'f0000000-0000-4000-8000-00000000000a' returning name$$,
  $$values (E'Zoë O\u2019Brien 山田')$$, 'an ordinary name and avatar are accepted');
reset role;
set local request.jwt.claims = '';
-- the same rules for every writer of a hand edit
set local role service_role;
select throws_ok($$update public.users set name = E'x\u202e' where id = 'f0000000-0000-4000-8000-00000000000a'$$,
  '23514', null, 'the service role cannot store a hostile name either');
select throws_ok($$update public.users set avatar_url = 'https://x.example/"' where id = 'f0000000-0000-4000-8000-00000000000a'$$,
  '23514', null, 'nor a hostile avatar');
reset role;

-- ... and a security-definer function of the app, owned by postgres -----------
set local role postgres;
create function public.test_promote_me() returns text language sql security definer set search_path = '' as $$
  update public.users set role = 'admin' where id = (select auth.uid()) returning role;
$$;
create function public.test_rename_me(p_name text) returns text language sql security definer set search_path = '' as $$
  update public.users set name = p_name where id = (select auth.uid()) returning name;
$$;
grant execute on function public.test_promote_me(), public.test_rename_me(text) to authenticated;
reset role;
set local role authenticated;
set local request.jwt.claims = '{"sub": "f0000000-0000-4000-8000-00000000000a", "role": "authenticated", "aud": "authenticated"}';
select throws_ok($$select public.test_promote_me()$$, '42501', 'only admins can change roles',
  'a security-definer RPC owned by postgres cannot raise its caller''s role');
select throws_ok($$select public.test_rename_me(E'\u202eevil')$$, '23514', null,
  'nor store a hostile name');
reset role;
set local request.jwt.claims = '';
select is((select role from public.users where id = 'f0000000-0000-4000-8000-00000000000a'), 'user', 'alice is still a user');
-- the SQL editor (postgres, no JWT) and admins still change roles
set local role postgres;
select results_eq($$update public.users set role = 'admin' where id = 'f0000000-0000-4000-8000-00000000000a' returning role$$,
  $$values ('admin')$$, 'the SQL editor changes roles');
reset role;
select is(user_sync.auth_role('f0000000-0000-4000-8000-00000000000a'), 'admin', 'and Auth has it (write-back)');

select * from finish();
rollback;
