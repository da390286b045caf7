-- Reference definition of user_sync.auth_profiles as it was before the performance work
-- (commit 1393e08: translate() on every name candidate, a per-row subquery for providers),
-- kept as schema bench_ref for bench/sql/equivalence.sql. Install into a benchmark or
-- scratch database only, as supabase_admin or postgres.
create schema if not exists bench_ref;
create or replace view bench_ref.auth_profiles as
 SELECT au.id,
    NULLIF((au.email)::text, ''::text) AS email,
    NULLIF(au.phone, ''::text) AS phone,
    NULLIF(rtrim("left"(COALESCE(NULLIF(btrim(translate(c.full_name, k.ctrl, k.sp), k.ws), ''::text), NULLIF(btrim(translate(c.name, k.ctrl, k.sp), k.ws), ''::text), NULLIF(btrim(translate(c.given_family, k.ctrl, k.sp), k.ws), ''::text), NULLIF(btrim(translate(c.user_name, k.ctrl, k.sp), k.ws), ''::text), NULLIF(btrim(translate(c.preferred_username, k.ctrl, k.sp), k.ws), ''::text), NULLIF(btrim(translate(c.nickname, k.ctrl, k.sp), k.ws), ''::text), NULLIF(btrim(translate(split_part((au.email)::text, '@'::text, 1), k.ctrl, k.sp), k.ws), ''::text)), ( SELECT cfg.name_max_length
           FROM user_sync.config cfg)), k.ws), ''::text) AS name,
        CASE
            WHEN ((char_length(c.avatar_url) <= 2048) AND (c.avatar_url ~* '^https?://[^[:space:][:cntrl:]]+$'::text)) THEN c.avatar_url
            WHEN ((char_length(c.picture) <= 2048) AND (c.picture ~* '^https?://[^[:space:][:cntrl:]]+$'::text)) THEN c.picture
            ELSE NULL::text
        END AS avatar_url,
    COALESCE(r.role, ( SELECT cfg.default_role
           FROM user_sync.config cfg), 'user'::text) AS role,
        CASE
            WHEN (jsonb_typeof((au.raw_app_meta_data -> 'provider'::text)) = 'string'::text) THEN "left"((au.raw_app_meta_data ->> 'provider'::text), 200)
            ELSE NULL::text
        END AS provider,
        CASE
            WHEN (jsonb_typeof((au.raw_app_meta_data -> 'providers'::text)) = 'array'::text) THEN ARRAY( SELECT "left"((e.value #>> '{}'::text[]), 200) AS "left"
               FROM jsonb_array_elements((au.raw_app_meta_data -> 'providers'::text)) e(value)
              WHERE (jsonb_typeof(e.value) = 'string'::text))
            ELSE '{}'::text[]
        END AS providers,
    COALESCE(au.is_anonymous, false) AS is_anonymous,
    au.email_confirmed_at,
    au.last_sign_in_at,
    COALESCE(au.created_at, now()) AS created_at,
    au.deleted_at
   FROM (((auth.users au
     CROSS JOIN ( SELECT ((((('	
  '::text || ''::text) || ''::text) || ''::text) || ''::text) || '​‌‍‎‏‪‫‬‭‮⁠⁦⁧⁨⁩﻿'::text) AS ctrl,
            '        '::text AS sp,
            '                　'::text AS ws) k)
     CROSS JOIN LATERAL ( SELECT
                CASE
                    WHEN (jsonb_typeof((au.raw_user_meta_data -> 'full_name'::text)) = 'string'::text) THEN (au.raw_user_meta_data ->> 'full_name'::text)
                    ELSE NULL::text
                END AS full_name,
                CASE
                    WHEN (jsonb_typeof((au.raw_user_meta_data -> 'name'::text)) = 'string'::text) THEN (au.raw_user_meta_data ->> 'name'::text)
                    ELSE NULL::text
                END AS name,
            concat_ws(' '::text,
                CASE
                    WHEN (jsonb_typeof((au.raw_user_meta_data -> 'given_name'::text)) = 'string'::text) THEN (au.raw_user_meta_data ->> 'given_name'::text)
                    ELSE NULL::text
                END,
                CASE
                    WHEN (jsonb_typeof((au.raw_user_meta_data -> 'family_name'::text)) = 'string'::text) THEN (au.raw_user_meta_data ->> 'family_name'::text)
                    ELSE NULL::text
                END) AS given_family,
                CASE
                    WHEN (jsonb_typeof((au.raw_user_meta_data -> 'user_name'::text)) = 'string'::text) THEN (au.raw_user_meta_data ->> 'user_name'::text)
                    ELSE NULL::text
                END AS user_name,
                CASE
                    WHEN (jsonb_typeof((au.raw_user_meta_data -> 'preferred_username'::text)) = 'string'::text) THEN (au.raw_user_meta_data ->> 'preferred_username'::text)
                    ELSE NULL::text
                END AS preferred_username,
                CASE
                    WHEN (jsonb_typeof((au.raw_user_meta_data -> 'nickname'::text)) = 'string'::text) THEN (au.raw_user_meta_data ->> 'nickname'::text)
                    ELSE NULL::text
                END AS nickname,
                CASE
                    WHEN (jsonb_typeof((au.raw_user_meta_data -> 'avatar_url'::text)) = 'string'::text) THEN btrim((au.raw_user_meta_data ->> 'avatar_url'::text))
                    ELSE NULL::text
                END AS avatar_url,
                CASE
                    WHEN (jsonb_typeof((au.raw_user_meta_data -> 'picture'::text)) = 'string'::text) THEN btrim((au.raw_user_meta_data ->> 'picture'::text))
                    ELSE NULL::text
                END AS picture) c)
     LEFT JOIN user_sync.roles r ON ((r.role =
        CASE
            WHEN (jsonb_typeof((au.raw_app_meta_data -> 'role'::text)) = 'string'::text) THEN (au.raw_app_meta_data ->> 'role'::text)
            ELSE NULL::text
        END)));
create or replace view bench_ref.profile_drift as
 SELECT d.id,
    d.email,
    d.phone,
    d.name,
    d.avatar_url,
    d.role,
    d.provider,
    d.providers,
    d.is_anonymous,
    d.email_confirmed_at,
    d.last_sign_in_at,
    d.created_at,
    d.deleted_at,
    (p.id IS NULL) AS missing,
    ((p.id IS NOT NULL) AND ((((((((((((p.email IS DISTINCT FROM d.email) OR (p.phone IS DISTINCT FROM d.phone)) OR (p.role IS DISTINCT FROM d.role)) OR (p.provider IS DISTINCT FROM d.provider)) OR (p.providers IS DISTINCT FROM d.providers)) OR (p.is_anonymous IS DISTINCT FROM d.is_anonymous)) OR (p.email_confirmed_at IS DISTINCT FROM d.email_confirmed_at)) OR (p.last_sign_in_at IS DISTINCT FROM d.last_sign_in_at)) OR (p.created_at IS DISTINCT FROM d.created_at)) OR (p.deleted_at IS DISTINCT FROM d.deleted_at)) OR (
        CASE
            WHEN (p.name_edited_at IS NULL) THEN (p.name IS DISTINCT FROM d.name)
            ELSE false
        END IS DISTINCT FROM false)) OR (
        CASE
            WHEN (p.avatar_url_edited_at IS NULL) THEN (p.avatar_url IS DISTINCT FROM d.avatar_url)
            ELSE false
        END IS DISTINCT FROM false))) AS drifted,
    p.xmin AS profile_xmin
   FROM (bench_ref.auth_profiles d
     LEFT JOIN public.users p ON ((p.id = d.id)));
