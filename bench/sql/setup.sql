-- Benchmark helpers, installed by bench/run.ts into the benchmark's own cluster only
-- (schema `bench`; never part of a migration). Runs as supabase_admin.
create schema if not exists bench;

-- Scratch table of the cold-reconcile floor: the cheapest possible copy of the
-- auth users into a table with a primary key.
create table if not exists bench.scratch (id uuid primary key, email text);

-- Provider-shaped auth users i = p_from .. p_to, as Supabase Auth writes them.
-- Deterministic (ids and names derive from i), so every run sees the same data.
-- The mix per 100 users: 40 email (a quarter with a full_name given at sign-up),
-- 25 google, 10 github (half without a display name), 5 azure (given/family name
-- only), 5 apple (private relay, no name), 5 phone-only, 5 anonymous, 4 email+google
-- linked, 1 discord; one user in a thousand is an admin (raw_app_meta_data.role).
-- The trigger is bypassed (session_replication_role = replica), so the profiles are
-- left missing for reconcile to create.
create or replace function bench.gen_users(p_from bigint, p_to bigint) returns bigint
language plpgsql
set search_path = ''
as $$
declare
  n bigint;
begin
  set local session_replication_role = replica;
  insert into auth.users (
    instance_id, id, aud, role, email, encrypted_password, email_confirmed_at, phone,
    phone_confirmed_at, last_sign_in_at, raw_app_meta_data, raw_user_meta_data,
    created_at, updated_at, confirmation_token, is_anonymous, is_sso_user
  )
  select
    '00000000-0000-0000-0000-000000000000'::uuid, g.id, 'authenticated', 'authenticated',
    g.email, g.pw, g.confirmed, g.phone, case when g.kind = 'phone' then g.created end,
    case when g.i % 7 <> 0 then g.created + (g.i % 97) * interval '1 day' end,
    g.app, g.meta, g.created, g.created + interval '1 minute', '', g.kind = 'anon', false
  from (
    select
      s.*,
      case s.kind
        when 'phone' then null
        when 'anon' then null
        when 'google' then lower(s.first || '.' || s.last) || s.i || '@gmail.com'
        when 'linked' then lower(s.first || '.' || s.last) || s.i || '@gmail.com'
        when 'github' then lower(s.first) || s.i || '@users.noreply.github.com'
        when 'azure' then lower(left(s.first, 1) || s.last) || s.i || '@contoso.onmicrosoft.com'
        when 'apple' then substr(md5(s.i::text), 1, 10) || '@privaterelay.appleid.com'
        when 'discord' then lower(s.first) || s.i || '@discord.example'
        else lower(s.first) || '.' || lower(s.last) || s.i || '@' || (array['example.com', 'mail.example', 'corp.example', 'outlook.example'])[1 + s.i % 4]
      end as email,
      case when s.kind in ('email', 'linked') then '$2a$10$' || substr(md5(s.i::text || 'pw'), 1, 22) || substr(md5(s.i::text), 1, 31) else '' end as pw,
      case when s.kind in ('phone', 'anon') then null
           when s.kind = 'email' and s.i % 10 = 3 then null
           else s.created + interval '5 minutes' end as confirmed,
      case when s.kind = 'phone' then '1555' || lpad(s.i::text, 9, '0') end as phone,
      case s.kind
        when 'anon' then '{}'::jsonb
        when 'linked' then jsonb_build_object('provider', 'email', 'providers', jsonb_build_array('email', 'google'))
        else jsonb_build_object('provider', s.kind, 'providers', jsonb_build_array(s.kind))
      end || case when s.i % 1000 = 999 then '{"role": "admin"}'::jsonb else '{}'::jsonb end as app,
      case s.kind
        when 'email' then jsonb_build_object('sub', s.id, 'email', lower(s.first) || '.' || lower(s.last) || s.i || '@example.com',
                                             'email_verified', s.i % 10 <> 3, 'phone_verified', false)
                          || case when s.i % 4 = 0 then jsonb_build_object('full_name', s.first || ' ' || s.last) else '{}'::jsonb end
        when 'google' then jsonb_build_object(
          'iss', 'https://accounts.google.com', 'sub', s.num, 'name', s.first || ' ' || s.last,
          'email', lower(s.first || '.' || s.last) || s.i || '@gmail.com',
          'picture', 'https://lh3.googleusercontent.com/a/ACg8oc' || substr(s.h, 1, 20),
          'full_name', s.first || ' ' || s.last,
          'avatar_url', 'https://lh3.googleusercontent.com/a/ACg8oc' || substr(s.h, 1, 20),
          'provider_id', s.num, 'email_verified', true, 'phone_verified', false)
        when 'linked' then jsonb_build_object(
          'iss', 'https://accounts.google.com', 'sub', s.num, 'name', s.first || ' ' || s.last,
          'email', lower(s.first || '.' || s.last) || s.i || '@gmail.com',
          'picture', 'https://lh3.googleusercontent.com/a/ACg8oc' || substr(s.h, 1, 20),
          'full_name', s.first || ' ' || s.last,
          'avatar_url', 'https://lh3.googleusercontent.com/a/ACg8oc' || substr(s.h, 1, 20),
          'provider_id', s.num, 'email_verified', true, 'phone_verified', false)
        when 'github' then jsonb_build_object(
          'iss', 'https://api.github.com', 'sub', s.i::text, 'email', lower(s.first) || s.i || '@users.noreply.github.com',
          'user_name', lower(s.first) || s.i, 'preferred_username', lower(s.first) || s.i,
          'avatar_url', 'https://avatars.githubusercontent.com/u/' || s.i || '?v=4',
          'provider_id', s.i::text, 'email_verified', true, 'phone_verified', false)
          || case when s.i % 2 = 0 then jsonb_build_object('name', s.first || ' ' || s.last, 'full_name', s.first || ' ' || s.last) else '{}'::jsonb end
        when 'azure' then jsonb_build_object(
          'iss', 'https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0', 'sub', 'AAAAAAAAAAAAAAAAAAAAA' || substr(s.h, 1, 22),
          'email', lower(left(s.first, 1) || s.last) || s.i || '@contoso.onmicrosoft.com',
          'given_name', s.first, 'family_name', s.last, 'provider_id', 'AAAAAAAAAAAAAAAAAAAAA' || substr(s.h, 1, 22),
          'custom_claims', jsonb_build_object('tid', '9188040d-6c67-4c5b-b112-36a304b66dad'), 'email_verified', true)
        when 'apple' then jsonb_build_object(
          'iss', 'https://appleid.apple.com', 'sub', '001234.' || s.h || '.1234',
          'email', substr(md5(s.i::text), 1, 10) || '@privaterelay.appleid.com', 'provider_id', '001234.' || s.h || '.1234',
          'custom_claims', jsonb_build_object('auth_time', 1767261900 + s.i, 'is_private_email', true), 'email_verified', true)
        when 'phone' then jsonb_build_object('sub', s.id, 'phone_verified', true, 'email_verified', false)
        when 'discord' then jsonb_build_object(
          'iss', 'https://discord.com/api', 'sub', s.num, 'name', lower(s.first) || '#0', 'email', lower(s.first) || s.i || '@discord.example',
          'picture', 'https://cdn.discordapp.com/avatars/' || s.num || '/' || s.h || '.png', 'full_name', lower(s.first),
          'avatar_url', 'https://cdn.discordapp.com/avatars/' || s.num || '/' || s.h || '.png', 'provider_id', s.num,
          'custom_claims', jsonb_build_object('global_name', s.first), 'email_verified', true)
        else '{}'::jsonb
      end as meta
    from (
      select
        i,
        -- a version-4 UUID, as Supabase Auth makes them (deterministic here)
        overlay(overlay(md5('user-sync-bench-' || i) placing '4' from 13) placing substr('89ab', 1 + (i % 4)::int, 1) from 17)::uuid as id, md5(i::text || 'h') as h,
        (100000000000000000000::numeric + i * 7919)::text as num,
        timestamptz '2023-01-01 00:00:00+00' + i * interval '37 seconds' as created,
        (array['Ada', 'Grace', 'Alan', 'Linus', 'Barbara', 'Edsger', 'Margaret', 'Dennis', 'Frances', 'Ken',
               'Radia', 'Tim', 'Katherine', 'Donald', 'Hedy', 'Niklaus', 'Sophie', 'José', 'Zoë', 'Björn'])[1 + (i / 7) % 20] as first,
        (array['Lovelace', 'Hopper', 'Turing', 'Torvalds', 'Liskov', 'Dijkstra', 'Hamilton', 'Ritchie', 'Allen', 'Thompson',
               'Perlman', 'Berners-Lee', 'Johnson', 'Knuth', 'Lamarr', 'Wirth', 'Wilson', 'Núñez', 'O''Brien', 'Østergaard'])[1 + (i / 3) % 20] as last,
        case
          when i % 100 < 40 then 'email'
          when i % 100 < 65 then 'google'
          when i % 100 < 75 then 'github'
          when i % 100 < 80 then 'azure'
          when i % 100 < 85 then 'apple'
          when i % 100 < 90 then 'phone'
          when i % 100 < 95 then 'anon'
          when i % 100 < 99 then 'linked'
          else 'discord'
        end as kind
      from generate_series(p_from, p_to) as i
    ) s
  ) g;
  get diagnostics n = row_count;
  return n;
end
$$;

-- Drift of about p_percent of the users, behind the system's back (triggers and the
-- foreign key bypassed, as replication, a restore or a manual fix would): a third
-- missing (profile deleted), a third changed (half in auth.users metadata and email,
-- half by tampering with auth-owned profile columns), a third orphaned (a profile
-- whose auth user is gone). p_seed picks different users each time.
create or replace function bench.make_drift(p_percent numeric, p_seed integer) returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_total bigint;
  v_each bigint;
  v_missing bigint;
  v_changed_auth bigint;
  v_changed_profile bigint;
  v_orphaned bigint;
begin
  set local session_replication_role = replica;
  select count(*) into v_total from auth.users;
  v_each := greatest(1, round(v_total * p_percent / 100 / 3));

  create temp table drift_pick on commit drop as
    select id, row_number() over (order by hashtextextended(id::text, p_seed)) as rn
    from public.users
    order by hashtextextended(id::text, p_seed)
    limit v_each * 2;

  delete from public.users u using drift_pick d where d.id = u.id and d.rn <= v_each;
  get diagnostics v_missing = row_count;

  update auth.users au set
    raw_user_meta_data = coalesce(au.raw_user_meta_data, '{}') || jsonb_build_object('full_name', 'Renamed ' || d.rn || ' ' || p_seed),
    email = case when au.email is not null then 'renamed' || p_seed || '.' || d.rn || '.' || au.email end,
    updated_at = now()
  from drift_pick d
  where d.id = au.id and d.rn > v_each and d.rn <= v_each + v_each / 2;
  get diagnostics v_changed_auth = row_count;

  update public.users u set email = 'tampered-' || d.rn || '@example.invalid', provider = 'forged'
  from drift_pick d
  where d.id = u.id and d.rn > v_each + v_each / 2;
  get diagnostics v_changed_profile = row_count;

  insert into public.users (id, email, name, role, provider, providers, created_at, updated_at, synced_at)
  select overlay(overlay(md5('orphan-' || p_seed || '-' || i) placing '4' from 13) placing 'a' from 17)::uuid, 'orphan' || i || '@example.invalid', 'Orphan ' || i,
         'user', 'email', '{email}', now(), now(), now()
  from generate_series(1, v_each) as i;
  get diagnostics v_orphaned = row_count;

  return jsonb_build_object('missing', v_missing, 'changed', v_changed_auth + v_changed_profile,
                            'changed_in_auth', v_changed_auth, 'changed_in_profile', v_changed_profile,
                            'orphaned', v_orphaned);
end
$$;
