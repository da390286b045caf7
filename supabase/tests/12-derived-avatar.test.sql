-- A derived avatar_url meets the rule of a hand edit: metadata cannot put quotes or
-- angle brackets (markup) into a profile an app renders; a clean URL still follows.
begin;
select plan(4);

insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
values
  ('f1000000-0000-4000-8000-000000000001', 'authenticated', 'authenticated', 'quote@example.com', '{}',
   '{"avatar_url": "https://img.example.com/a.png\"onerror=\"alert(1)"}', now(), now()),
  ('f1000000-0000-4000-8000-000000000002', 'authenticated', 'authenticated', 'angle@example.com', '{}',
   '{"avatar_url": "https://img.example.com/<script>", "picture": "https://img.example.com/ok.png"}', now(), now()),
  ('f1000000-0000-4000-8000-000000000003', 'authenticated', 'authenticated', 'apos@example.com', '{}',
   '{"picture": "https://img.example.com/it''s.png"}', now(), now()),
  ('f1000000-0000-4000-8000-000000000004', 'authenticated', 'authenticated', 'clean@example.com', '{}',
   '{"avatar_url": "https://img.example.com/u/4.png?s=64"}', now(), now());

select is((select avatar_url from public.users where id = 'f1000000-0000-4000-8000-000000000001'), null,
  'an avatar_url with a double quote is not copied');
select is((select avatar_url from public.users where id = 'f1000000-0000-4000-8000-000000000002'),
  'https://img.example.com/ok.png', 'an avatar_url with angle brackets falls back to a clean picture');
select is((select avatar_url from public.users where id = 'f1000000-0000-4000-8000-000000000003'), null,
  'a picture with an apostrophe is not copied');
select is((select avatar_url from public.users where id = 'f1000000-0000-4000-8000-000000000004'),
  'https://img.example.com/u/4.png?s=64', 'a clean avatar_url follows metadata');

select * from finish();
rollback;
