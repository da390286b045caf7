-- =============================================================================
-- User Sync for Supabase
-- Keeps public.users an exact, self-healing, secure mirror of auth.users.
--
-- The current definition of every object, one file per concern, applied in name
-- order. Migrations (supabase/migrations) are what `supabase db push` applies; npm
-- test proves both build the same database (scripts/schema-check.sh).
--
-- One home for all sync logic: the field rules (30_field_rules.sql: what a profile
-- should be, how it differs), used by the trigger on auth.users,
-- user_sync.sync_user(), user_sync.reconcile() and user_sync.status().
--
-- Runs as postgres (not a superuser on Supabase). Every function pins
-- search_path = '' and qualifies every name: the auth trigger runs as
-- supabase_auth_admin, whose search_path is `auth`.
-- =============================================================================

create extension if not exists pg_cron with schema pg_catalog;
create extension if not exists pg_net with schema extensions;

-- -----------------------------------------------------------------------------
-- Schema user_sync: private, never exposed through the Data API
-- -----------------------------------------------------------------------------
create schema if not exists user_sync;
comment on schema user_sync is
  'User Sync for Supabase: sync logic, run log and error log. Do not expose through the Data API.';
revoke all on schema user_sync from public;
-- authenticated needs only user_sync.is_admin() (RLS policies) and
-- user_sync.config.name_max_length (the guard on its own edits).
grant usage on schema user_sync to authenticated, service_role;

