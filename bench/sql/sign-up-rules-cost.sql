-- What a sign-up's profile insert costs inside the database, apart from Auth's own insert
-- and from pgbench (issue 10, item 2): the statement of the AFTER INSERT trigger
-- (user_sync.insert_profile_of: the field rules over the row, then the insert) against
-- plain inserts into public.users, one call per user in a PL/pgSQL loop, each variant on
-- its own fifth of the same freshly created auth users (inserted in replica mode, so
-- without our trigger), in one transaction that is rolled back. Also: the same statement
-- planned anew each call (force_custom_plan), which is what the first five sign-ups of a
-- database session pay before the plan cache keeps the generic plan.
--   PGPASSWORD=postgres psql -X -h 127.0.0.1 -p PORT -U supabase_admin -d postgres -v n=4000 -f bench/sql/sign-up-rules-cost.sql
\set ON_ERROR_STOP 1
set client_min_messages = notice;
begin;
set local session_replication_role = replica;
insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at, is_sso_user, is_anonymous)
select '00000000-0000-0000-0000-000000000000', i.id, 'authenticated', 'authenticated', i.id || '@x.example', '{"provider": "email", "providers": ["email"]}',
 jsonb_build_object('sub', i.id, 'email', i.id || '@x.example', 'email_verified', true, 'phone_verified', false, 'first_name', 'Sign', 'last_name', 'Up', 'full_name', 'Sign Up'), now(), now(), false, false
from (select gen_random_uuid() id from generate_series(1, 5 * :n)) i;
set local session_replication_role = origin;
create temp table batch on commit drop as
select row(au.id, au.email::text, au.phone::text, au.raw_user_meta_data::jsonb, au.raw_app_meta_data::jsonb, au.is_anonymous::boolean,
  au.email_confirmed_at::timestamptz, au.last_sign_in_at::timestamptz, au.created_at::timestamptz, au.deleted_at::timestamptz)::user_sync.auth_user_fields as r,
  (row_number() over ()) % 5 as k
from auth.users au where au.email like '%@x.example';
do $$
declare
  v_t timestamptz; r user_sync.auth_user_fields; v_n int;
  v_res text := '';
begin
  for v_round in 0..4 loop
    v_t := clock_timestamp(); v_n := 0;
    if v_round = 0 then
      for r in select (b.r).* from pg_temp.batch b where b.k = v_round loop
        insert into public.users (id, email) values (r.id, r.email); v_n := v_n + 1;
      end loop;
      v_res := v_res || format(E'\n  bare insert (id, email)            %s us', round(extract(epoch from clock_timestamp() - v_t) * 1e6 / v_n));
    elsif v_round = 1 then
      for r in select (b.r).* from pg_temp.batch b where b.k = v_round loop
        perform user_sync.insert_profile_of(r); v_n := v_n + 1;
      end loop;
      v_res := v_res || format(E'\n  insert_profile_of                  %s us', round(extract(epoch from clock_timestamp() - v_t) * 1e6 / v_n));
    elsif v_round = 2 then
      perform set_config('plan_cache_mode', 'force_custom_plan', true);
      for r in select (b.r).* from pg_temp.batch b where b.k = v_round loop
        perform user_sync.insert_profile_of(r); v_n := v_n + 1;
      end loop;
      perform set_config('plan_cache_mode', 'auto', true);
      v_res := v_res || format(E'\n  insert_profile_of, custom plans    %s us', round(extract(epoch from clock_timestamp() - v_t) * 1e6 / v_n));
    elsif v_round = 3 then
      perform set_config('plan_cache_mode', 'force_generic_plan', true);
      for r in select (b.r).* from pg_temp.batch b where b.k = v_round loop
        perform user_sync.insert_profile_of(r); v_n := v_n + 1;
      end loop;
      perform set_config('plan_cache_mode', 'auto', true);
      v_res := v_res || format(E'\n  insert_profile_of, generic plan    %s us', round(extract(epoch from clock_timestamp() - v_t) * 1e6 / v_n));
    else
      for r in select (b.r).* from pg_temp.batch b where b.k = v_round loop
        insert into public.users (id, email, phone, name, avatar_url, role, provider, providers, is_anonymous, email_confirmed_at, last_sign_in_at, created_at, deleted_at, updated_at, synced_at)
        values (r.id, r.email, r.phone, 'Sign Up', null, 'user', 'email', '{email}', false, r.email_confirmed_at, r.last_sign_in_at, r.created_at, null, now(), clock_timestamp());
        v_n := v_n + 1;
      end loop;
      v_res := v_res || format(E'\n  insert of the values, no rules     %s us', round(extract(epoch from clock_timestamp() - v_t) * 1e6 / v_n));
    end if;
  end loop;
  raise notice '%', v_res;
end
$$;
rollback;
