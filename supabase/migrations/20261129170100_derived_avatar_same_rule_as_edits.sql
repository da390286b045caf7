-- =============================================================================
-- User Sync for Supabase 0.2.0: a derived avatar_url meets the rule of a hand edit
-- (http(s), no whitespace, control characters, quotes or angle brackets), so metadata
-- cannot put markup into an app that renders the value. Existing profiles with such an
-- avatar are corrected by the next reconcile (the rules changed, so it compares every
-- profile). Current definition: supabase/schemas/30_field_rules.sql.
-- =============================================================================

-- Every rule is an inline expression (no function calls), so that a set-based pass
-- stays one scan of auth.users; the costly cleaning runs only on dirty candidates.
create or replace function user_sync.expected_profiles_sql() returns text
language sql
immutable
set search_path = ''
as $rules$
  select $sql$
  select
    au.id,
    nullif(au.email, '')::text as email,
    nullif(au.phone, '') as phone,
    -- Each candidate is cleaned (control characters out, whitespace trimmed); the
    -- costly translate() runs only when k.dirty finds something to clean, which
    -- gives the same result for a clean candidate at a fraction of the cost.
    nullif(rtrim(left(coalesce(
      case when c.full_name ~ k.dirty then nullif(btrim(translate(c.full_name, k.ctrl, k.sp), k.ws), '') else nullif(c.full_name, '') end,
      case when c.name ~ k.dirty then nullif(btrim(translate(c.name, k.ctrl, k.sp), k.ws), '') else nullif(c.name, '') end,
      case when c.given_family ~ k.dirty then nullif(btrim(translate(c.given_family, k.ctrl, k.sp), k.ws), '') else nullif(c.given_family, '') end,
      case when c.user_name ~ k.dirty then nullif(btrim(translate(c.user_name, k.ctrl, k.sp), k.ws), '') else nullif(c.user_name, '') end,
      case when c.preferred_username ~ k.dirty then nullif(btrim(translate(c.preferred_username, k.ctrl, k.sp), k.ws), '') else nullif(c.preferred_username, '') end,
      case when c.nickname ~ k.dirty then nullif(btrim(translate(c.nickname, k.ctrl, k.sp), k.ws), '') else nullif(c.nickname, '') end,
      case when split_part(au.email, '@', 1) ~ k.dirty then nullif(btrim(translate(split_part(au.email, '@', 1), k.ctrl, k.sp), k.ws), '') else nullif(split_part(au.email, '@', 1), '') end
    ), (select cfg.name_max_length from user_sync.config cfg)), k.ws), '') as name,
    case
      when char_length(c.avatar_url) <= 2048 and c.avatar_url ~* '^https?://[^[:space:][:cntrl:]"''<>]+$' then c.avatar_url
      when char_length(c.picture) <= 2048 and c.picture ~* '^https?://[^[:space:][:cntrl:]"''<>]+$' then c.picture
    end as avatar_url,
    coalesce(r.role, (select cfg.default_role from user_sync.config cfg), 'user') as role,
    case when jsonb_typeof(au.raw_app_meta_data -> 'provider') = 'string'
      then left(au.raw_app_meta_data ->> 'provider', 200) end as provider,
    -- The string elements of raw_app_meta_data.providers. One or two strings (nearly
    -- every user) are read inline; only other shapes pay for a per-row subquery.
    case
      when jsonb_typeof(au.raw_app_meta_data -> 'providers') is distinct from 'array' then '{}'::text[]
      when jsonb_array_length(au.raw_app_meta_data -> 'providers') = 1
           and jsonb_typeof(au.raw_app_meta_data -> 'providers' -> 0) = 'string'
        then array[left(au.raw_app_meta_data -> 'providers' ->> 0, 200)]
      when jsonb_array_length(au.raw_app_meta_data -> 'providers') = 2
           and jsonb_typeof(au.raw_app_meta_data -> 'providers' -> 0) = 'string'
           and jsonb_typeof(au.raw_app_meta_data -> 'providers' -> 1) = 'string'
        then array[left(au.raw_app_meta_data -> 'providers' ->> 0, 200), left(au.raw_app_meta_data -> 'providers' ->> 1, 200)]
      else array(
        select left(e #>> '{}', 200)
        from jsonb_array_elements(au.raw_app_meta_data -> 'providers') as e
        where jsonb_typeof(e) = 'string'
      )
    end as providers,
    coalesce(au.is_anonymous, false) as is_anonymous,
    au.email_confirmed_at,
    au.last_sign_in_at,
    coalesce(au.created_at, now()) as created_at,
    au.deleted_at
  from auth.users au
  cross join (
    select
      -- tab, LF, CR, VT, FF, NEL, LS, PS become spaces; other control and invisible
      -- formatting characters (C0, DEL, C1, zero-width, bidi overrides, BOM) go.
      E'\t\n\r\u000b\u000c\u0085\u2028\u2029'
      || E'\u0001\u0002\u0003\u0004\u0005\u0006\u0007\u0008\u000e\u000f'
      || E'\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001a\u001b\u001c\u001d\u001e\u001f\u007f'
      || E'\u0080\u0081\u0082\u0083\u0084\u0086\u0087\u0088\u0089\u008a\u008b\u008c\u008d\u008e\u008f'
      || E'\u0090\u0091\u0092\u0093\u0094\u0095\u0096\u0097\u0098\u0099\u009a\u009b\u009c\u009d\u009e\u009f'
      || E'\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2066\u2067\u2068\u2069\ufeff' as ctrl,
      '        '::text as sp,
      E' \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000' as ws,
      -- Matches exactly when translate(x, ctrl, sp) or btrim(x, ws) would change x:
      -- a ctrl character anywhere, or a ws character at either end.
      '[\u0001-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff]'
      || '|^[ \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]|[ \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]$' as dirty
  ) k
  cross join lateral (
    select
      case when jsonb_typeof(au.raw_user_meta_data -> 'full_name') = 'string' then au.raw_user_meta_data ->> 'full_name' end as full_name,
      case when jsonb_typeof(au.raw_user_meta_data -> 'name') = 'string' then au.raw_user_meta_data ->> 'name' end as name,
      concat_ws(' ',
        case when jsonb_typeof(au.raw_user_meta_data -> 'given_name') = 'string' then au.raw_user_meta_data ->> 'given_name' end,
        case when jsonb_typeof(au.raw_user_meta_data -> 'family_name') = 'string' then au.raw_user_meta_data ->> 'family_name' end
      ) as given_family,
      case when jsonb_typeof(au.raw_user_meta_data -> 'user_name') = 'string' then au.raw_user_meta_data ->> 'user_name' end as user_name,
      case when jsonb_typeof(au.raw_user_meta_data -> 'preferred_username') = 'string' then au.raw_user_meta_data ->> 'preferred_username' end as preferred_username,
      case when jsonb_typeof(au.raw_user_meta_data -> 'nickname') = 'string' then au.raw_user_meta_data ->> 'nickname' end as nickname,
      case when jsonb_typeof(au.raw_user_meta_data -> 'avatar_url') = 'string' then btrim(au.raw_user_meta_data ->> 'avatar_url') end as avatar_url,
      case when jsonb_typeof(au.raw_user_meta_data -> 'picture') = 'string' then btrim(au.raw_user_meta_data ->> 'picture') end as picture
  ) c
  left join user_sync.roles r
    on r.role = case when jsonb_typeof(au.raw_app_meta_data -> 'role') = 'string' then au.raw_app_meta_data ->> 'role' end
  $sql$::text;
$rules$;
comment on function user_sync.expected_profiles_sql() is
  'The field rules: a query over auth.users returning one user_sync.expected_profile per auth user. One home for the rules, run as dynamic SQL (no catalog dependency on auth.users columns).';
revoke execute on function user_sync.expected_profiles_sql() from public, anon, authenticated;

select user_sync.compile_field_rules();
