-- -----------------------------------------------------------------------------
-- Roles and configuration
-- -----------------------------------------------------------------------------
create table if not exists user_sync.roles (
  role text primary key check (role ~ '^[a-z][a-z0-9_]{0,39}$'),
  description text not null default ''
);
comment on table user_sync.roles is
  'Known application roles. raw_app_meta_data.role is copied into public.users.role only when it names one of these.';
insert into user_sync.roles (role, description) values
  ('user', 'Default role of every profile'),
  ('admin', 'Reads every profile and may change roles')
on conflict (role) do nothing;
revoke all on user_sync.roles from public, anon, authenticated;
grant select on user_sync.roles to authenticated, service_role;

create table if not exists user_sync.config (
  id boolean primary key default true check (id),
  default_role text not null default 'user' references user_sync.roles (role),
  name_max_length integer not null default 200 check (name_max_length between 1 and 1000),
  full_compare_every interval not null default '1 day' check (full_compare_every > interval '0')
);
comment on table user_sync.config is 'Single-row configuration of User Sync.';
comment on column user_sync.config.default_role is 'Role given when raw_app_meta_data names no known role.';
comment on column user_sync.config.name_max_length is 'Names derived from metadata are cut to this many characters.';
comment on column user_sync.config.full_compare_every is
  'How often reconcile compares every profile with its auth user instead of only the rows written since its last complete pass (default once a day).';
insert into user_sync.config (id) values (true) on conflict (id) do nothing;
revoke all on user_sync.config from public, anon, authenticated;
grant select on user_sync.config to service_role;

