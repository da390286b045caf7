-- Following auth metadata again (@user-sync/client followMetadata): the owner may
-- clear the edit marker of name / avatar_url through the Data API, never set one, and
-- never touch someone else's; the next sync takes the field from metadata again.
begin;
select plan(9);

insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
values
  ('f0000000-0000-4000-8000-00000000000a', 'authenticated', 'authenticated', 'fiona@example.com',
   '{"provider": "google", "providers": ["google"]}',
   '{"full_name": "Fiona From Google", "avatar_url": "https://example.com/fiona.png"}', now(), now()),
  ('f0000000-0000-4000-8000-00000000000b', 'authenticated', 'authenticated', 'gus@example.com',
   '{"provider": "email", "providers": ["email"]}', '{"full_name": "Gus"}', now(), now());

set local role authenticated;
set local request.jwt.claims = '{"sub": "f0000000-0000-4000-8000-00000000000a", "role": "authenticated", "aud": "authenticated"}';
update public.users set name = 'Fi', avatar_url = 'https://cdn.example.com/fi.png'
where id = 'f0000000-0000-4000-8000-00000000000a';
select isnt((select name_edited_at from public.users where id = 'f0000000-0000-4000-8000-00000000000a'),
  null, 'an edit sets the marker');
select throws_ok($$update public.users set name_edited_at = now() + interval '100 years' where id = 'f0000000-0000-4000-8000-00000000000a'$$,
  '42501', 'edit markers can only be cleared', 'the owner cannot set an edit marker');
select throws_ok($$update public.users set avatar_url_edited_at = '2000-01-01' where id = 'f0000000-0000-4000-8000-00000000000a'$$,
  '42501', 'edit markers can only be cleared', 'nor the avatar''s');
select is_empty($$update public.users set name_edited_at = null where id = 'f0000000-0000-4000-8000-00000000000b' returning 1$$,
  'a user cannot clear another user''s marker');
select results_eq($$with u as (update public.users set name_edited_at = null where id = 'f0000000-0000-4000-8000-00000000000a' returning name, name_edited_at) select name, name_edited_at from u$$,
  $$values ('Fi'::text, null::timestamptz)$$, 'the owner clears the name marker; the name stays until the next sync');
reset role;

select is(user_sync.sync_user('f0000000-0000-4000-8000-00000000000a'), 'updated', 'the next sync updates the profile');
select is((select name from public.users where id = 'f0000000-0000-4000-8000-00000000000a'),
  'Fiona From Google', 'the name follows metadata again');
select is((select avatar_url from public.users where id = 'f0000000-0000-4000-8000-00000000000a'),
  'https://cdn.example.com/fi.png', 'the avatar, still edited, is kept');
select isnt((select avatar_url_edited_at from public.users where id = 'f0000000-0000-4000-8000-00000000000a'),
  null, 'its marker is untouched');

select * from finish();
rollback;
