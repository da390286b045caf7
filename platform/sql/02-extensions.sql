-- LOCAL PLATFORM (development and tests only; never deployed): a stand-in for the hosted platform.
-- Extensions a Supabase project has, or that postgres may enable through supautils'
-- "privileged extensions" (which does not exist here, so they are created up front by
-- the superuser; the migration's `create extension if not exists` is then a no-op,
-- exactly as it is on a project where they are already enabled).

-- pg_cron (Debian package 1.4.2): jobs run as the role that scheduled them.
create extension if not exists pg_cron with schema pg_catalog;
grant usage on schema cron to postgres with grant option;
grant all privileges on all tables in schema cron to postgres with grant option;
grant all privileges on all sequences in schema cron to postgres with grant option;
grant execute on all functions in schema cron to postgres with grant option;

-- pg_net stand-in (tests/platform/extensions/pg_net--*.sql).
create extension if not exists pg_net with schema extensions;
grant usage on schema net to postgres, anon, authenticated, service_role;
grant execute on function net.http_post(text, jsonb, jsonb, jsonb, integer),
                          net.http_get(text, jsonb, jsonb, integer)
  to postgres, anon, authenticated, service_role;
grant select on net._http_response, net.http_request_queue to postgres, service_role;

-- Vault stand-in (tests/platform/extensions/supabase_vault--*.sql); Vault is enabled
-- on every project and postgres may create and read secrets.
create extension if not exists supabase_vault;
grant usage on schema vault to postgres, service_role;
grant select, delete on vault.secrets, vault.decrypted_secrets to postgres, service_role;
grant execute on function vault.create_secret(text, text, text, uuid),
                          vault.update_secret(uuid, text, text, text, uuid)
  to postgres, service_role;

-- Used by `supabase db lint` and by our tests.
create extension if not exists plpgsql_check with schema extensions;
create extension if not exists pgtap with schema extensions;
create extension if not exists dblink with schema extensions;
