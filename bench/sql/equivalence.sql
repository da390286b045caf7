-- Differential check used while optimising the field rules: random hostile metadata
-- (control and invisible characters, blank candidates, wrong JSON types, odd
-- provider arrays, long strings) must give the same profile under a reference
-- definition of the expected profiles (schema bench_ref, bench/sql/reference_views.sql) and the
-- current field rules (user_sync.expected_profiles_sql(), as a temporary view). Runs in a
-- transaction that is rolled back.
begin;
select setseed(0.4242);
set local session_replication_role = replica;
create or replace function pg_temp.rs(len int) returns text language sql volatile as $$
  select coalesce(string_agg(pal[1 + floor(random() * array_length(pal, 1))::int], ''), '')
  from (select array[
  'a', 'b', 'Z', 'é', 'ß', '中', '😀', ' ', ' ', ' ', E'\t', E'\n', E'\r', E'\u000b', E'\u000c', E'\u0085', E'\u2028', E'\u2029',
  E'\u0001', E'\u0007', E'\u001f', E'\u007f', E'\u0080', E'\u009f', E'\u200b', E'\u200d', E'\u200f', E'\u202a', E'\u202e',
  E'\u2060', E'\u2066', E'\u2069', E'\ufeff', E'\u00a0', E'\u1680', E'\u2000', E'\u2005', E'\u200a', E'\u202f', E'\u205f',
  E'\u3000', E'\u2061', E'\u00ad', '@', '.', '-', '/', ':', 'h', 't', 'p', 's', 'H', 'T', 'P', 'S', '"', '\', '[', ']', '{', '}', ','
] as pal) p, generate_series(1, len)
$$;
create or replace function pg_temp.rv() returns jsonb language sql volatile as $$
  select case floor(random() * 10)::int
    when 0 then 'null'::jsonb when 1 then to_jsonb(floor(random() * 100)::int) when 2 then '{"x": 1}'::jsonb
    when 3 then '["a"]'::jsonb when 4 then to_jsonb(''::text)
    when 5 then to_jsonb('https://' || pg_temp.rs(floor(random() * 6)::int) || 'x.example/p.png')
    when 6 then to_jsonb(pg_temp.rs(floor(random() * 3)::int))
    when 7 then to_jsonb(case when random() < 0.5 then 'HTTP://a.example/' else 'http://' end || pg_temp.rs(floor(random() * 4)::int))
    else to_jsonb(pg_temp.rs(floor(random() * 12)::int)) end
$$;
create or replace function pg_temp.rprov() returns jsonb language sql volatile as $$
  select case floor(random() * 6)::int
    when 0 then null when 1 then '"email"'::jsonb when 2 then '{}'::jsonb
    else (select coalesce(jsonb_agg(pg_temp.rv()), '[]'::jsonb) from generate_series(1, floor(random() * 4)::int))
  end
$$;
insert into auth.users (id, aud, role, email, phone, raw_app_meta_data, raw_user_meta_data, created_at, updated_at, is_anonymous, deleted_at)
select gen_random_uuid(), 'authenticated', 'authenticated',
  case when random() < 0.8 then pg_temp.rs(floor(random() * 5)::int) || '#' || i || case when random() < 0.8 then '@example.com' else '' end end,
  case when random() < 0.2 then '1555' || i end,
  case when random() < 0.05 then null when random() < 0.05 then '"str"'::jsonb else
    jsonb_strip_nulls(jsonb_build_object('provider', case when random() < 0.8 then pg_temp.rv() end, 'providers', pg_temp.rprov(),
      'role', case when random() < 0.3 then (array['"admin"', '"user"', '"root"', '1', '["admin"]'])[1 + floor(random() * 5)::int]::jsonb end))
  end,
  case when random() < 0.05 then null when random() < 0.05 then '[1]'::jsonb else
    jsonb_strip_nulls(jsonb_build_object(
      'full_name', case when random() < 0.3 then pg_temp.rv() end,
      'name', case when random() < 0.3 then pg_temp.rv() end,
      'given_name', case when random() < 0.3 then pg_temp.rv() end,
      'family_name', case when random() < 0.3 then pg_temp.rv() end,
      'user_name', case when random() < 0.3 then pg_temp.rv() end,
      'preferred_username', case when random() < 0.3 then pg_temp.rv() end,
      'nickname', case when random() < 0.3 then pg_temp.rv() end,
      'avatar_url', case when random() < 0.4 then pg_temp.rv() end,
      'picture', case when random() < 0.4 then pg_temp.rv() end))
    || case when random() < 0.02 then jsonb_build_object('full_name', repeat('ab ', 150) || pg_temp.rs(20)) else '{}'::jsonb end
  end,
  now(), now(), random() < 0.1, case when random() < 0.05 then now() end
from generate_series(1, :n) i;
create temp table ids as select id from auth.users where created_at = now();
-- The current rules as a view for this transaction only (temporary: gone at rollback).
do $$ begin execute format('create temp view expected_profiles as %s', user_sync.expected_profiles_sql()); end $$;
select count(*) as hostile_users,
  (select count(*) from (
     (select o.* from bench_ref.auth_profiles o join ids using (id) except all select n.* from pg_temp.expected_profiles n join ids using (id))
     union all
     (select n.* from pg_temp.expected_profiles n join ids using (id) except all select o.* from bench_ref.auth_profiles o join ids using (id))) x) as differing_profiles
from ids;
rollback;
