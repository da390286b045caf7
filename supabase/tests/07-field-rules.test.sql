-- Field rules on awkward and hostile metadata: the name is the first non-blank
-- candidate, cleaned (trimmed, control and invisible characters removed) and bounded;
-- the avatar must be an http(s) URL; metadata that is not an object, or holds values
-- of the wrong type, never makes a sync fail.
begin;
select plan(18);

insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
values
  ('f0000000-0000-4000-8000-000000000001', 'authenticated', 'authenticated', 'ctrl@example.com', '{}',
   jsonb_build_object('full_name', E'\t  Zoë\u0007 \u202eevil\u202c  Ñandú\n'), now(), now()),
  ('f0000000-0000-4000-8000-000000000002', 'authenticated', 'authenticated', 'blank@example.com', '{}',
   jsonb_build_object('full_name', E'   \u00a0 ', 'name', E'\u200b', 'user_name', 'blank-skipper'), now(), now()),
  ('f0000000-0000-4000-8000-000000000003', 'authenticated', 'authenticated', 'types@example.com', '{}',
   '{"full_name": 42, "name": {"first": "Obj"}, "given_name": ["A"], "nickname": "nick"}', now(), now()),
  ('f0000000-0000-4000-8000-000000000004', 'authenticated', 'authenticated', 'huge@example.com', '{}',
   jsonb_build_object('full_name', repeat('ab', 50000)), now(), now()),
  ('f0000000-0000-4000-8000-000000000005', 'authenticated', 'authenticated', 'array.meta@example.com',
   '["not", "an", "object"]', '["also", "not", "an", "object"]', now(), now()),
  ('f0000000-0000-4000-8000-000000000006', 'authenticated', 'authenticated', 'scalar.meta@example.com',
   '"just a string"', '12345', now(), now()),
  ('f0000000-0000-4000-8000-000000000007', 'authenticated', 'authenticated', 'null.meta@example.com',
   null, 'null', now(), now()),
  ('f0000000-0000-4000-8000-000000000008', 'authenticated', 'authenticated', 'avatar@example.com',
   '{"provider": "email", "providers": ["email", 7, null, {"x": 1}, "google"]}',
   '{"avatar_url": "javascript:alert(1)", "picture": "https://img.example.com/p.png", "given_name": "Only"}', now(), now()),
  ('f0000000-0000-4000-8000-000000000009', 'authenticated', 'authenticated', 'avatar2@example.com',
   '{"role": ["admin"]}', '{"avatar_url": "https://ok.example.com/a b.png", "family_name": "Solo"}', now(), now()),
  ('f0000000-0000-4000-8000-000000000010', 'authenticated', 'authenticated', E'rtl\u202e@example.com', '{}',
   '{"full_name": "מרים כהן"}', now(), now());

select is((select count(*)::int from public.users where id::text like 'f0000000-%'), 10, 'every hostile sign-up got a profile');
select is((select count(*)::int from user_sync.errors where user_id::text like 'f0000000-%'), 0, 'and no sync failed');
select is((select name from public.users where id = 'f0000000-0000-4000-8000-000000000001'), 'Zoë evil  Ñandú',
  'control characters and bidi overrides are removed, whitespace trimmed');
select is((select name from public.users where id = 'f0000000-0000-4000-8000-000000000002'), 'blank-skipper',
  'blank and invisible-only candidates are skipped');
select is((select name from public.users where id = 'f0000000-0000-4000-8000-000000000003'), 'nick',
  'candidates that are not strings are skipped');
select is((select char_length(name) from public.users where id = 'f0000000-0000-4000-8000-000000000004'), 200,
  'a huge name is cut to the configured bound');
select results_eq(
  $$select name, role, provider, providers from public.users where id = 'f0000000-0000-4000-8000-000000000005'$$,
  $$values ('array.meta', 'user', null::text, '{}'::text[])$$,
  'array metadata: email-derived name, default role, no providers');
select results_eq(
  $$select name, role, provider from public.users where id = 'f0000000-0000-4000-8000-000000000006'$$,
  $$values ('scalar.meta', 'user', null::text)$$,
  'scalar metadata is ignored');
select results_eq(
  $$select name, role from public.users where id = 'f0000000-0000-4000-8000-000000000007'$$,
  $$values ('null.meta', 'user')$$,
  'null metadata is ignored');
select is((select avatar_url from public.users where id = 'f0000000-0000-4000-8000-000000000008'), 'https://img.example.com/p.png',
  'a javascript: avatar is refused and picture is used instead');
select is((select providers from public.users where id = 'f0000000-0000-4000-8000-000000000008'), '{email,google}'::text[],
  'only string providers are kept');
select is((select name from public.users where id = 'f0000000-0000-4000-8000-000000000008'), 'Only',
  'given_name alone names the profile');
select results_eq(
  $$select avatar_url, role, name from public.users where id = 'f0000000-0000-4000-8000-000000000009'$$,
  $$values (null::text, 'user', 'Solo')$$,
  'an avatar URL with spaces is refused; a non-string role is ignored; family_name alone names the profile');
select is((select name from public.users where id = 'f0000000-0000-4000-8000-000000000010'), 'מרים כהן',
  'right-to-left names are kept as they are');
select is((select email from public.users where id = 'f0000000-0000-4000-8000-000000000010'), E'rtl\u202e@example.com',
  'email mirrors auth.users exactly');

-- the bound is configuration
update user_sync.config set name_max_length = 10;
select is((user_sync.reconcile() ->> 'status'), 'ok', 'reconcile applies a new name bound');
select is((select name from public.users where id = 'f0000000-0000-4000-8000-000000000004'), 'ababababab',
  'names follow the configured bound');

-- the app cannot store what sync would never write
set local role service_role;
select throws_ok($$update public.users set name = E'bad\u0007name' where id = 'f0000000-0000-4000-8000-000000000001'$$,
  '23514', null, 'a name with control characters is refused with a clear constraint error');
reset role;

select * from finish();
rollback;
