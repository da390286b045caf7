-- Upgrading a database whose names break the new rule (issue 11, item 5): the
-- migration cleans them the way a derived name is cleaned, adds the check without a
-- table scan under an exclusive lock (NOT VALID), and the check then validates.
-- Replays the migration on a database put back to the v0.2.0 check.
begin;
select plan(8);

insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
values
  ('a1000000-0000-4000-8000-000000000001', 'authenticated', 'authenticated', 'u1@example.com', '{}', '{}', now(), now()),
  ('a1000000-0000-4000-8000-000000000002', 'authenticated', 'authenticated', 'u2@example.com', '{}', '{}', now(), now()),
  ('a1000000-0000-4000-8000-000000000003', 'authenticated', 'authenticated', 'u3@example.com', '{}', '{}', now(), now()),
  ('a1000000-0000-4000-8000-000000000004', 'authenticated', 'authenticated', 'u4@example.com', '{}', '{}', now(), now());

-- v0.2.0's check, and names users gave themselves under it
alter table public.users drop constraint users_name_clean;
alter table public.users add constraint users_name_clean check (
  name is null or (char_length(name) between 1 and 1000 and name !~ '[[:cntrl:]]'));
update public.users set name = E'\u202eevil\u200b' where id = 'a1000000-0000-4000-8000-000000000001';
update public.users set name = E'  \u3000 ' where id = 'a1000000-0000-4000-8000-000000000002';
update public.users set name = E' Padded\u2028Name ' where id = 'a1000000-0000-4000-8000-000000000003';
update public.users set name = 'Fine Name' where id = 'a1000000-0000-4000-8000-000000000004';

set local client_min_messages = warning;
\ir ../migrations/20261129120000_authorization_from_auth.sql

select is((select name from public.users where id = 'a1000000-0000-4000-8000-000000000001'), 'evil', 'invisible and bidi characters are removed');
select is((select name from public.users where id = 'a1000000-0000-4000-8000-000000000002'), null, 'a whitespace-only name becomes null');
select is((select name from public.users where id = 'a1000000-0000-4000-8000-000000000003'), 'Padded Name', 'separators become spaces, ends are trimmed');
select is((select name from public.users where id = 'a1000000-0000-4000-8000-000000000004'), 'Fine Name', 'a clean name is untouched');
select isnt((select name_edited_at from public.users where id = 'a1000000-0000-4000-8000-000000000001'), null,
  'a cleaned edit is still an edit (sync will not overwrite it)');
select is((select convalidated from pg_constraint where conname = 'users_name_clean' and conrelid = 'public.users'::regclass),
  false, 'the check was added NOT VALID (no scan under an exclusive lock)');
select lives_ok($$alter table public.users validate constraint users_name_clean$$,
  'every row meets it: it validates');
select throws_ok($$update public.users set name = E'x\u202e' where id = 'a1000000-0000-4000-8000-000000000004'$$,
  '23514', null, 'and it holds for new writes');

select * from finish();
rollback;
