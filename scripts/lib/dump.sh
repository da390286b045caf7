# shellcheck shell=bash
# dump_schema PORT: a comparable description of what User Sync owns in the database on
# 127.0.0.1:PORT: `pg_dump --schema-only` (minus the random \restrict keys of recent
# pg_dump builds and the dump's own comments), then the data a schema dump leaves out
# but the migrations create (the cron job, the seeded roles, the config row).
dump_schema() {
  local port="$1"
  PGPASSWORD=postgres pg_dump -h 127.0.0.1 -p "$port" -U supabase_admin -d postgres \
    --schema-only --exclude-schema=supabase_migrations |
    grep -v -E '^\\(un)?restrict |^-- Dumped (from|by) ' || true
  PGPASSWORD=postgres psql -X -q -A -h 127.0.0.1 -p "$port" -U supabase_admin -d postgres <<'SQL'
\echo -- cron jobs
select jobname, schedule, command, active, username from cron.job order by jobname;
\echo -- user_sync.roles
select * from user_sync.roles order by 1;
\echo -- user_sync.config
select * from user_sync.config;
SQL
}
