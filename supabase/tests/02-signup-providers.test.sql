-- A sign-up per provider shape, inserted the way Supabase Auth does it: as
-- supabase_auth_admin with its own search_path (`auth`), user row first, identity
-- row after. Each gets the expected profile at once, from the trigger.
begin;
\ir _helpers.psql
select plan(13);

call tests.as_auth($$
insert into users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                   raw_app_meta_data, raw_user_meta_data, created_at, updated_at, confirmation_token)
values
  -- email/password, unconfirmed
  ('00000000-0000-0000-0000-000000000000', 'a0000000-0000-4000-8000-000000000001', 'authenticated', 'authenticated',
   'mona.lisa@example.com', '$2a$10$abcdefghijklmnopqrstuv', null,
   '{"provider": "email", "providers": ["email"]}',
   '{"sub": "a0000000-0000-4000-8000-000000000001", "email": "mona.lisa@example.com", "email_verified": false, "phone_verified": false}',
   '2026-01-01 10:00:00+00', '2026-01-01 10:00:00+00', 'tok-1'),
  -- Google
  ('00000000-0000-0000-0000-000000000000', 'a0000000-0000-4000-8000-000000000002', 'authenticated', 'authenticated',
   'grace.hopper@gmail.com', '', '2026-01-01 10:01:00+00',
   '{"provider": "google", "providers": ["google"]}',
   '{"iss": "https://accounts.google.com", "sub": "109876543210987654321", "name": "Grace Hopper", "email": "grace.hopper@gmail.com", "picture": "https://lh3.googleusercontent.com/a/ACg8ocK", "full_name": "Grace Hopper", "avatar_url": "https://lh3.googleusercontent.com/a/ACg8ocK", "provider_id": "109876543210987654321", "email_verified": true, "phone_verified": false}',
   '2026-01-01 10:01:00+00', '2026-01-01 10:01:00+00', ''),
  -- GitHub, account without a display name: user_name is used
  ('00000000-0000-0000-0000-000000000000', 'a0000000-0000-4000-8000-000000000003', 'authenticated', 'authenticated',
   'octocat@users.noreply.github.com', '', '2026-01-01 10:02:00+00',
   '{"provider": "github", "providers": ["github"]}',
   '{"iss": "https://api.github.com", "sub": "583231", "email": "octocat@users.noreply.github.com", "user_name": "octocat", "avatar_url": "https://avatars.githubusercontent.com/u/583231?v=4", "provider_id": "583231", "preferred_username": "octocat", "email_verified": true}',
   '2026-01-01 10:02:00+00', '2026-01-01 10:02:00+00', ''),
  -- Azure (Entra ID): only given_name and family_name
  ('00000000-0000-0000-0000-000000000000', 'a0000000-0000-4000-8000-000000000004', 'authenticated', 'authenticated',
   'ada@contoso.onmicrosoft.com', '', '2026-01-01 10:03:00+00',
   '{"provider": "azure", "providers": ["azure"]}',
   '{"iss": "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0", "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", "email": "ada@contoso.onmicrosoft.com", "given_name": "Ada", "family_name": "Lovelace", "provider_id": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", "custom_claims": {"tid": "9188040d-6c67-4c5b-b112-36a304b66dad"}, "email_verified": true}',
   '2026-01-01 10:03:00+00', '2026-01-01 10:03:00+00', ''),
  -- Discord
  ('00000000-0000-0000-0000-000000000000', 'a0000000-0000-4000-8000-000000000005', 'authenticated', 'authenticated',
   'nelly@discord.example', '', '2026-01-01 10:04:00+00',
   '{"provider": "discord", "providers": ["discord"]}',
   '{"iss": "https://discord.com/api", "sub": "80351110224678912", "name": "nelly#0", "email": "nelly@discord.example", "picture": "https://cdn.discordapp.com/avatars/80351110224678912/8342729096ea3675442027381ff50dfe.png", "full_name": "nelly", "avatar_url": "https://cdn.discordapp.com/avatars/80351110224678912/8342729096ea3675442027381ff50dfe.png", "provider_id": "80351110224678912", "custom_claims": {"global_name": "Nelly"}, "email_verified": true}',
   '2026-01-01 10:04:00+00', '2026-01-01 10:04:00+00', ''),
  -- Apple, private relay address, no name on this sign-in
  ('00000000-0000-0000-0000-000000000000', 'a0000000-0000-4000-8000-000000000006', 'authenticated', 'authenticated',
   'x7k2p9q4rs@privaterelay.appleid.com', '', '2026-01-01 10:05:00+00',
   '{"provider": "apple", "providers": ["apple"]}',
   '{"iss": "https://appleid.apple.com", "sub": "001234.5f1e2d3c4b5a69788796a5b4c3d2e1f0.1234", "email": "x7k2p9q4rs@privaterelay.appleid.com", "provider_id": "001234.5f1e2d3c4b5a69788796a5b4c3d2e1f0.1234", "custom_claims": {"auth_time": 1767261900, "is_private_email": true}, "email_verified": true}',
   '2026-01-01 10:05:00+00', '2026-01-01 10:05:00+00', '');

-- phone-only (SMS OTP): no email
insert into users (instance_id, id, aud, role, phone, phone_confirmed_at, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
values ('00000000-0000-0000-0000-000000000000', 'a0000000-0000-4000-8000-000000000007', 'authenticated', 'authenticated',
        '15555550107', '2026-01-01 10:06:00+00',
        '{"provider": "phone", "providers": ["phone"]}',
        '{"sub": "a0000000-0000-4000-8000-000000000007", "phone_verified": true, "email_verified": false}',
        '2026-01-01 10:06:00+00', '2026-01-01 10:06:00+00');

-- anonymous sign-in
insert into users (instance_id, id, aud, role, raw_app_meta_data, raw_user_meta_data, created_at, updated_at, is_anonymous)
values ('00000000-0000-0000-0000-000000000000', 'a0000000-0000-4000-8000-000000000008', 'authenticated', 'authenticated',
        '{}', '{}', '2026-01-01 10:07:00+00', '2026-01-01 10:07:00+00', true);

-- SAML SSO
insert into users (instance_id, id, aud, role, email, email_confirmed_at, raw_app_meta_data, raw_user_meta_data, created_at, updated_at, is_sso_user)
values ('00000000-0000-0000-0000-000000000000', 'a0000000-0000-4000-8000-000000000009', 'authenticated', 'authenticated',
        'eve@corp.example', '2026-01-01 10:08:00+00',
        '{"provider": "sso:8e5c3b4a-1d2e-4f60-9a7b-0c1d2e3f4a5b", "providers": ["sso:8e5c3b4a-1d2e-4f60-9a7b-0c1d2e3f4a5b"]}',
        '{"iss": "https://idp.corp.example/saml", "sub": "eve@corp.example", "email": "eve@corp.example", "full_name": "Eve Example", "custom_claims": {"department": "R&D"}}',
        '2026-01-01 10:08:00+00', '2026-01-01 10:08:00+00', true);

-- identities come after the user row, as in Supabase Auth
insert into identities (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
select u.raw_user_meta_data ->> 'sub', u.id, u.raw_user_meta_data, u.raw_app_meta_data ->> 'provider', now(), now(), now()
from users u
where u.id::text like 'a0000000-0000-4000-8000-00000000000%' and u.raw_user_meta_data ? 'sub'
$$);

select is((select count(*)::int from public.users where id::text like 'a0000000-0000-4000-8000-00000000000%'),
  9, 'every sign-up got a profile at once');

select results_eq(
  $$select id::text, email, phone, name, avatar_url, role, provider, providers, is_anonymous,
           email_confirmed_at is not null
    from public.users where id::text like 'a0000000-0000-4000-8000-00000000000%' order by id$$,
  $$values
    ('a0000000-0000-4000-8000-000000000001', 'mona.lisa@example.com', null::text, 'mona.lisa', null::text, 'user', 'email', '{email}'::text[], false, false),
    ('a0000000-0000-4000-8000-000000000002', 'grace.hopper@gmail.com', null, 'Grace Hopper', 'https://lh3.googleusercontent.com/a/ACg8ocK', 'user', 'google', '{google}', false, true),
    ('a0000000-0000-4000-8000-000000000003', 'octocat@users.noreply.github.com', null, 'octocat', 'https://avatars.githubusercontent.com/u/583231?v=4', 'user', 'github', '{github}', false, true),
    ('a0000000-0000-4000-8000-000000000004', 'ada@contoso.onmicrosoft.com', null, 'Ada Lovelace', null, 'user', 'azure', '{azure}', false, true),
    ('a0000000-0000-4000-8000-000000000005', 'nelly@discord.example', null, 'nelly', 'https://cdn.discordapp.com/avatars/80351110224678912/8342729096ea3675442027381ff50dfe.png', 'user', 'discord', '{discord}', false, true),
    ('a0000000-0000-4000-8000-000000000006', 'x7k2p9q4rs@privaterelay.appleid.com', null, 'x7k2p9q4rs', null, 'user', 'apple', '{apple}', false, true),
    ('a0000000-0000-4000-8000-000000000007', null, '15555550107', null, null, 'user', 'phone', '{phone}', false, false),
    ('a0000000-0000-4000-8000-000000000008', null, null, null, null, 'user', null, '{}', true, false),
    ('a0000000-0000-4000-8000-000000000009', 'eve@corp.example', null, 'Eve Example', null, 'user', 'sso:8e5c3b4a-1d2e-4f60-9a7b-0c1d2e3f4a5b', '{sso:8e5c3b4a-1d2e-4f60-9a7b-0c1d2e3f4a5b}', false, true)
  $$,
  'each provider shape yields the expected profile');

select is((select created_at from public.users where id = 'a0000000-0000-4000-8000-000000000002'),
  '2026-01-01 10:01:00+00'::timestamptz, 'created_at mirrors auth.users');
select is((select email_confirmed_at from public.users where id = 'a0000000-0000-4000-8000-000000000002'),
  '2026-01-01 10:01:00+00'::timestamptz, 'email_confirmed_at mirrors auth.users');
select is((select count(*)::int from public.users where id::text like 'a0000000-0000-4000-8000-00000000000%' and synced_at is null),
  0, 'synced_at is set by the sync');
select is((select count(*)::int from user_sync.errors where user_id::text like 'a0000000-0000-4000-8000-00000000000%'),
  0, 'no sync error was recorded');

-- Apple sends the name only later (first authorization), merged into metadata
call tests.as_auth($$
update users set raw_user_meta_data = raw_user_meta_data || '{"full_name": "Tim Apple"}', updated_at = now()
where id = 'a0000000-0000-4000-8000-000000000006'
$$);
select is((select name from public.users where id = 'a0000000-0000-4000-8000-000000000006'),
  'Tim Apple', 'Apple: the name arriving later replaces the email-derived one');

-- Google sign-in: last_sign_in_at and a metadata merge with a new picture
call tests.as_auth($$
update users set last_sign_in_at = '2026-02-02 08:00:00+00',
  raw_user_meta_data = raw_user_meta_data || '{"picture": "https://lh3.googleusercontent.com/a/NEW", "avatar_url": "https://lh3.googleusercontent.com/a/NEW"}'
where id = 'a0000000-0000-4000-8000-000000000002'
$$);
select results_eq(
  $$select last_sign_in_at, avatar_url from public.users where id = 'a0000000-0000-4000-8000-000000000002'$$,
  $$values ('2026-02-02 08:00:00+00'::timestamptz, 'https://lh3.googleusercontent.com/a/NEW')$$,
  'Google: sign-in time and the merged picture follow');

-- Email confirmation (email/password user clicks the link)
call tests.as_auth($$
update users set email_confirmed_at = '2026-01-02 09:00:00+00', confirmation_token = ''
where id = 'a0000000-0000-4000-8000-000000000001'
$$);
select is((select email_confirmed_at from public.users where id = 'a0000000-0000-4000-8000-000000000001'),
  '2026-01-02 09:00:00+00'::timestamptz, 'email confirmation is mirrored');

-- Phone user adds an email later
call tests.as_auth($$update users set email = 'phone.person@example.com' where id = 'a0000000-0000-4000-8000-000000000007'$$);
select results_eq(
  $$select email, name from public.users where id = 'a0000000-0000-4000-8000-000000000007'$$,
  $$values ('phone.person@example.com', 'phone.person')$$,
  'phone-only user: a later email is mirrored and names the profile');

-- An update that changes nothing we mirror (e.g. a recovery token) writes nothing
create temp table xmin_before as select xmin::text as x from public.users where id = 'a0000000-0000-4000-8000-000000000009';
call tests.as_auth($$
update users set recovery_token = 'abc', recovery_sent_at = now(), updated_at = now()
where id = 'a0000000-0000-4000-8000-000000000009'
$$);
select is((select xmin::text from public.users where id = 'a0000000-0000-4000-8000-000000000009'),
  (select x from xmin_before), 'an irrelevant auth update leaves the profile untouched');

-- user_sync.sync_user on an in-sync profile
select is(user_sync.sync_user('a0000000-0000-4000-8000-000000000003'), 'unchanged', 'sync_user reports unchanged for an in-sync profile');
select is((select count(*)::int from user_sync.errors where user_id::text like 'a0000000-0000-4000-8000-00000000000%'),
  0, 'still no sync error after the updates');

select * from finish();
rollback;
