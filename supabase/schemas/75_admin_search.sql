-- -----------------------------------------------------------------------------
-- user_sync.listed_profiles: the rows of public.users the caller may see (their own,
-- or all for admins: the same rule as the select policy), for public.list_users.
-- Why a view: under RLS the planner may not use an index for a condition that is not
-- leakproof (ILIKE is not), so a search over public.users itself reads every row. This
-- view belongs to the table owner, so RLS is not applied inside it, and it is not a
-- security barrier, so list_users' ILIKE reaches the trigram indexes; it applies the
-- policy's rule itself. It lives in user_sync, which the Data API does not expose.
-- -----------------------------------------------------------------------------
create or replace view user_sync.listed_profiles as
select u.id, u.email, u.name, u.role, u.provider, u.deleted_at, u.created_at, u.last_sign_in_at
from public.users u
where (select user_sync.is_admin())
   or (u.id = (select auth.uid()) and u.deleted_at is null);
comment on view user_sync.listed_profiles is
  'Ids and search columns of the profiles the caller may see (own, or all for admins), without RLS''s barrier so that searches use the indexes. Used by public.list_users.';
revoke all on user_sync.listed_profiles from public, anon;
grant select on user_sync.listed_profiles to authenticated, service_role;

-- -----------------------------------------------------------------------------
-- public.list_users: the admin user list of @user-sync/client (listUsers), as one RPC:
-- a case-insensitive substring of email or name (LIKE wildcards taken literally),
-- role, provider, soft-deleted or not, order, page; answers {users, total,
-- total_is_estimate}. Security invoker: the caller's own rights decide (a user gets
-- their own row). The total is exact when anything is filtered; for the whole table
-- of an admin above 100,000 rows it is the planner's estimate (user_sync.estimated_rows).
-- A short page is the last one, so a selective search costs one index scan, not two.
-- The profiles themselves are read from public.users (by id, under RLS).
-- -----------------------------------------------------------------------------
create or replace function public.list_users(
  p_search text default null,
  p_role text default null,
  p_provider text default null,
  p_include_deleted boolean default false,
  p_order_by text default 'created_at',
  p_ascending boolean default false,
  p_limit integer default 50,
  p_offset integer default 0
) returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  v_where text[] := array[]::text[];
  v_filter text;
  v_pattern text;
  v_total bigint;
  v_estimate boolean := false;
  v_ids uuid[];
begin
  if p_order_by is null or p_order_by not in ('created_at', 'email', 'name', 'last_sign_in_at', 'role') then
    raise exception using errcode = '22023', message = format('cannot order by %s', coalesce(p_order_by, 'null')),
      hint = 'Order by created_at, email, name, last_sign_in_at or role.';
  end if;
  if p_limit is null or p_limit < 0 or p_limit > 1000 or p_offset is null or p_offset < 0 then
    raise exception using errcode = '22023', message = 'p_limit must be 0..1000 and p_offset >= 0';
  end if;
  if nullif(btrim(p_search), '') is not null then
    v_pattern := '%' || replace(replace(replace(btrim(p_search), '\', '\\'), '%', '\%'), '_', '\_') || '%';
    v_where := v_where || format('(v.email ilike %1$L or v.name ilike %1$L)', v_pattern);
  end if;
  if p_role is not null then
    v_where := v_where || format('v.role = %L', p_role);
  end if;
  if p_provider is not null then
    v_where := v_where || format('v.provider = %L', p_provider);
  end if;
  if not coalesce(p_include_deleted, false) then
    v_where := v_where || 'v.deleted_at is null'::text;
  end if;
  v_filter := case when cardinality(v_where) > 0 then 'where ' || array_to_string(v_where, ' and ') else '' end;

  execute format(
    'select array_agg(s.id) from (select v.id from user_sync.listed_profiles v %s order by v.%I %s, v.id limit %s offset %s) s',
    v_filter, p_order_by, case when p_ascending then 'asc' else 'desc' end, p_limit, p_offset
  ) into v_ids;

  if v_pattern is null and p_role is null and p_provider is null and (select user_sync.is_admin()) then
    v_total := user_sync.estimated_rows('public.users');
    v_estimate := coalesce(v_total > 100000, false);
  end if;
  if not v_estimate then
    if coalesce(cardinality(v_ids), 0) between 1 and p_limit - 1 or (v_ids is null and p_offset = 0) then
      -- A short page is the last one: it tells the total without counting again.
      v_total := p_offset + coalesce(cardinality(v_ids), 0);
    else
      execute format('select count(*) from user_sync.listed_profiles v %s', v_filter) into v_total;
    end if;
  end if;

  return jsonb_build_object(
    'users', coalesce((
      select jsonb_agg(to_jsonb(u) order by array_position(v_ids, u.id))
      from public.users u where u.id = any(v_ids)
    ), '[]'::jsonb),
    'total', v_total,
    'total_is_estimate', v_estimate
  );
end
$$;
comment on function public.list_users(text, text, text, boolean, text, boolean, integer, integer) is
  'Admin user list (search over email and name, role, provider, deleted, order, page) for @user-sync/client: {users, total, total_is_estimate}. Users get only their own row.';
revoke execute on function public.list_users(text, text, text, boolean, text, boolean, integer, integer) from public, anon;
grant execute on function public.list_users(text, text, text, boolean, text, boolean, integer, integer) to authenticated, service_role;
