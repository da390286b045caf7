-- -----------------------------------------------------------------------------
-- public.users: one profile per auth user
-- -----------------------------------------------------------------------------
create table if not exists public.users (
  id uuid primary key references auth.users (id) on delete cascade,
  email text,
  phone text,
  name text,
  avatar_url text,
  role text not null default 'user' references user_sync.roles (role) on update cascade,
  provider text,
  providers text[] not null default '{}',
  is_anonymous boolean not null default false,
  email_confirmed_at timestamptz,
  last_sign_in_at timestamptz,
  created_at timestamptz not null default now(),
  deleted_at timestamptz,
  updated_at timestamptz not null default now(),
  synced_at timestamptz not null default now(),
  name_edited_at timestamptz,
  avatar_url_edited_at timestamptz,
  constraint users_avatar_url_http check (
    avatar_url is null or (char_length(avatar_url) <= 2048 and avatar_url ~* '^https?://[^[:space:][:cntrl:]]+$')
  )
);
-- Names meet the rules of a derived name whoever writes them (a user's own edit
-- included): no control, zero-width or bidi-override characters, no line or paragraph
-- separator, no BOM, no whitespace at either end (so never whitespace only), 1 to 1000
-- characters (user_sync.config.name_max_length is checked on edits by the guard).
-- NOT VALID: added without scanning the table under an exclusive lock; the upgrade
-- cleans existing rows first (`validate constraint` may be run at leisure).
alter table public.users drop constraint if exists users_name_clean;
alter table public.users add constraint users_name_clean check (
  name is null or (
    char_length(name) between 1 and 1000
    and name !~ '[\u0001-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff]'
    and name !~ '^[ \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]|[ \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]$'
  )
) not valid;
comment on constraint users_name_clean on public.users is
  'A name has no control, zero-width, bidi-override or separator characters, no BOM, no whitespace at either end, and 1 to 1000 characters.';
comment on table public.users is
  'Application profile of each Supabase Auth user, kept in sync with auth.users by User Sync. Auth-owned columns always mirror auth.users; name and avatar_url belong to the user once edited.';
comment on column public.users.id is 'The auth user (auth.users.id); the profile is removed when the auth user is hard-deleted.';
comment on column public.users.email is 'Mirror of auth.users.email (null for phone-only and anonymous users).';
comment on column public.users.phone is 'Mirror of auth.users.phone.';
comment on column public.users.name is
  'Display name. Follows raw_user_meta_data (full_name, name, given_name + family_name, user_name, preferred_username, nickname, else the email''s local part) until edited in the app.';
comment on column public.users.avatar_url is
  'Avatar URL (http/https only). Follows raw_user_meta_data.avatar_url or .picture until edited in the app.';
comment on column public.users.role is
  'Application role: raw_app_meta_data.role when it names a row of user_sync.roles, else user_sync.config.default_role. Admins may change it; the change is written back to raw_app_meta_data.';
comment on column public.users.provider is 'Mirror of raw_app_meta_data.provider (email, phone, google, github, sso:..., anonymous).';
comment on column public.users.providers is 'Mirror of raw_app_meta_data.providers.';
comment on column public.users.is_anonymous is 'Mirror of auth.users.is_anonymous.';
comment on column public.users.email_confirmed_at is 'Mirror of auth.users.email_confirmed_at.';
comment on column public.users.last_sign_in_at is 'Mirror of auth.users.last_sign_in_at.';
comment on column public.users.created_at is 'Mirror of auth.users.created_at.';
comment on column public.users.deleted_at is 'Mirror of auth.users.deleted_at: set when the auth user is soft-deleted; such profiles are hidden from non-admins.';
comment on column public.users.updated_at is 'Last change of this row (by the app or by sync).';
comment on column public.users.synced_at is 'Last write by User Sync.';
comment on column public.users.name_edited_at is 'When name was last edited in the app; while set, sync never overwrites name. Set to null to follow metadata again.';
comment on column public.users.avatar_url_edited_at is 'When avatar_url was last edited in the app; while set, sync never overwrites avatar_url.';

create index if not exists users_admin_idx on public.users (id) where role = 'admin';

-- -----------------------------------------------------------------------------
-- Admin search (listUsers in @user-sync/client): a case-insensitive substring of
-- email or name, `email ilike '%term%' or name ilike '%term%'`, answered from two
-- trigram indexes (a BitmapOr) instead of a scan; pages in the default order
-- (newest first) walk created_at. Not on columns that sign-ins change
-- (last_sign_in_at), so a sign-in's profile update can stay a HOT update.
-- -----------------------------------------------------------------------------
create extension if not exists pg_trgm with schema extensions;

create index if not exists users_email_trgm_idx on public.users using gin (email extensions.gin_trgm_ops);
create index if not exists users_name_trgm_idx on public.users using gin (name extensions.gin_trgm_ops);
create index if not exists users_created_at_idx on public.users (created_at desc, id);

