-- LOCAL PLATFORM (development and tests only; never deployed): a stand-in for the hosted platform.
-- Reproduces the roles and schema privileges of a hosted Supabase project, as far as
-- our migrations depend on them. Run once, as the bootstrap superuser supabase_admin.

-- postgres is NOT a superuser on the platform: it can create roles and bypass RLS,
-- and it owns what migrations create.
create role postgres login password 'postgres' createrole createdb replication bypassrls;

-- Data API roles. anon/authenticated are switched into by PostgREST (authenticator).
create role anon nologin noinherit;
create role authenticated nologin noinherit;
create role service_role nologin noinherit bypassrls;
create role authenticator login password 'postgres' noinherit;
grant anon, authenticated, service_role to authenticator;
-- postgres can `set role` to the API roles (the SQL editor and pgTAP rely on it).
grant anon, authenticated, service_role to postgres;

-- Supabase Auth connects as supabase_auth_admin, whose search_path is `auth`.
create role supabase_auth_admin login password 'postgres' noinherit createrole;
alter role supabase_auth_admin set search_path = auth;
-- The platform caps API roles' statements.
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';

-- Database and public schema. New projects no longer grant public tables to the API
-- roles by default, so no default privileges on tables here; functions keep
-- Supabase's default of EXECUTE for the API roles.
grant all on database postgres to postgres;
grant usage, create on schema public to postgres;
grant usage on schema public to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant execute on functions to anon, authenticated, service_role;

-- `extensions` schema, as on the platform.
create schema extensions authorization postgres;
grant usage on schema extensions to anon, authenticated, service_role;
create extension if not exists pgcrypto with schema extensions;
create extension if not exists "uuid-ossp" with schema extensions;
create extension if not exists pg_stat_statements with schema extensions;

-- The platform's default search_path includes `extensions`.
alter database postgres set search_path = "$user", public, extensions;
