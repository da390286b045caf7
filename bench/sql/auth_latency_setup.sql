-- Setup for bench/auth_latency.ts (benchmark database only).
--
-- The anchor: the trigger of Supabase's "Managing user data" guide, as published:
-- a profiles table with a foreign key to auth.users (on delete cascade) and a
-- security-definer plpgsql trigger that inserts id, first and last name.
create table if not exists public.profiles (
  id uuid not null references auth.users on delete cascade,
  first_name text,
  last_name text,
  primary key (id)
);
alter table public.profiles enable row level security;

create or replace function public.handle_new_user()
returns trigger
language plpgsql
security definer set search_path = ''
as $$
begin
  insert into public.profiles (id, first_name, last_name)
  values (new.id, new.raw_user_meta_data ->> 'first_name', new.raw_user_meta_data ->> 'last_name');
  return new;
end;
$$;

create or replace trigger on_auth_user_created
  after insert on auth.users
  for each row execute procedure public.handle_new_user();
alter table auth.users disable trigger on_auth_user_created;

-- The users that sign in: ids a pgbench script can compute from a number (no lookup).
create schema if not exists bench;
create or replace function bench.auth_latency_id(k bigint) returns uuid
language sql immutable
set search_path = ''
as $$ select ('00000000-0000-4000-8000-' || lpad(to_hex(k), 12, '0'))::uuid $$;

create or replace function bench.auth_latency_seed(p_users integer) returns void
language sql
set search_path = ''
as $$
  insert into auth.users (
    instance_id, id, aud, role, email, encrypted_password, email_confirmed_at, last_sign_in_at,
    raw_app_meta_data, raw_user_meta_data, created_at, updated_at, confirmation_token, is_sso_user, is_anonymous
  )
  select '00000000-0000-0000-0000-000000000000', bench.auth_latency_id(k), 'authenticated', 'authenticated',
    'user' || k || '@bench.example', '$2a$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234',
    now() - interval '30 days', now() - interval '1 day',
    '{"provider": "email", "providers": ["email"]}',
    jsonb_build_object('sub', bench.auth_latency_id(k), 'email', 'user' || k || '@bench.example',
      'email_verified', true, 'phone_verified', false, 'first_name', 'First' || k, 'last_name', 'Last' || k,
      'full_name', 'First' || k || ' Last' || k),
    now() - interval '30 days', now() - interval '1 day', '', false, false
  from generate_series(1, p_users) k
  on conflict do nothing;
$$;
