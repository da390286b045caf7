-- -----------------------------------------------------------------------------
-- Scheduled healing: pg_cron job `user-sync` calls the sync-all edge function every
-- five minutes through pg_net. The project URL and the secret key come from Vault
-- (secrets user_sync_project_url and user_sync_secret_key); nothing secret is
-- written here. A missing secret fails the job with a clear message in
-- cron.job_run_details and the Postgres log.
-- -----------------------------------------------------------------------------
create or replace function user_sync.vault_secret(p_name text) returns text
language plpgsql
stable
set search_path = ''
as $$
declare
  v_value text;
begin
  select s.decrypted_secret into v_value
  from vault.decrypted_secrets s
  where s.name = p_name
  order by s.created_at desc
  limit 1;
  if v_value is null or btrim(v_value) = '' then
    raise exception using errcode = 'P0002',
      message = format('user_sync: Vault secret %L is missing', p_name),
      hint = format('Create it with: select vault.create_secret(''<value>'', %L);', p_name);
  end if;
  return v_value;
end
$$;
comment on function user_sync.vault_secret(text) is
  'Reads a Vault secret by name for the user-sync cron job; raises a clear error when it is missing.';
revoke execute on function user_sync.vault_secret(text) from public, anon, authenticated, service_role;

select cron.schedule(
  'user-sync',
  '*/5 * * * *',
  $cron$
  select net.http_post(
    url := rtrim(user_sync.vault_secret('user_sync_project_url'), '/') || '/functions/v1/sync-all',
    headers := jsonb_build_object(
      'Content-Type', 'application/json',
      'Authorization', 'Bearer ' || user_sync.vault_secret('user_sync_secret_key'),
      'apikey', user_sync.vault_secret('user_sync_secret_key')
    ),
    body := jsonb_build_object('source', 'cron'),
    timeout_milliseconds := 150000
  );
  $cron$
);
