-- public.list_users (@user-sync/client listUsers): what each caller sees, the search's
-- literal matching, and that the search can use the trigram indexes (which a query on
-- public.users under RLS cannot: ILIKE is not leakproof).
begin;
select plan(18);

-- The plan of a query, as text.
create function pg_temp.plan(q text) returns text language plpgsql as $f$
declare r record; t text := '';
begin
  for r in execute 'explain (costs off) ' || q loop t := t || r."QUERY PLAN" || E'\n'; end loop;
  return t;
end
$f$;

insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at, deleted_at)
values
  ('e0000000-0000-4000-8000-00000000000a', 'authenticated', 'authenticated', 'lu-ann@example.com',
   '{"provider": "email", "providers": ["email"]}', '{"full_name": "Ann 100% Sure"}', now() - interval '3 days', now(), null),
  ('e0000000-0000-4000-8000-00000000000b', 'authenticated', 'authenticated', 'lu-ben@example.com',
   '{"provider": "google", "providers": ["google"]}', '{"full_name": "Ben 100x Sure"}', now() - interval '2 days', now(), null),
  ('e0000000-0000-4000-8000-00000000000c', 'authenticated', 'authenticated', 'lu-cat@example.com',
   '{"provider": "email", "providers": ["email"], "role": "admin"}', '{"full_name": "Cat Admin"}', now() - interval '1 day', now(), null),
  ('e0000000-0000-4000-8000-00000000000d', 'authenticated', 'authenticated', 'lu-dan@example.com',
   '{"provider": "email", "providers": ["email"]}', '{"full_name": "Dan Gone"}', now(), now(), now());

set local role anon;
set local request.jwt.claims = '{"role": "anon"}';
select throws_ok($$select public.list_users()$$, '42501', null, 'anon cannot list users');
reset role;

set local role authenticated;
set local request.jwt.claims = '{"sub": "e0000000-0000-4000-8000-00000000000a", "role": "authenticated"}';
select is(public.list_users('lu-')->'users'->0->>'id', 'e0000000-0000-4000-8000-00000000000a', 'a user finds only themselves');
select is((public.list_users('lu-')->>'total')::int, 1, 'and the total says so');
select is((select count(*)::int from user_sync.listed_profiles), 1, 'the view shows a user only their own row');
reset role;

set local role authenticated;
set local request.jwt.claims = '{"sub": "e0000000-0000-4000-8000-00000000000c", "role": "authenticated"}';
select is(public.list_users('lu-', p_order_by => 'email', p_ascending => true)->'users',
  (select jsonb_agg(to_jsonb(u) order by u.email) from public.users u where u.email like 'lu-%' and u.deleted_at is null),
  'an admin gets the full profiles of every match, in the requested order');
select is((public.list_users('LU-', p_include_deleted => true)->>'total')::int, 4, 'case-insensitive; soft-deleted users on request');
select is(public.list_users('100% sure')->'users', public.list_users('lu-ann')->'users', '% is taken literally');
select is((public.list_users('lu-', p_provider => 'google', p_limit => 1)->>'total')::int, 1, 'filtered by provider');
select is(jsonb_array_length(public.list_users('lu-', p_limit => 2, p_offset => 2)->'users'), 1, 'pages');
select is((public.list_users('lu-', p_limit => 2, p_offset => 2)->>'total')::int, 3, 'the last, short page tells the total');
select is(public.list_users('lu-', p_limit => 2, p_offset => 10) - 'total_is_estimate',
  '{"users": [], "total": 3}'::jsonb, 'a page past the end is empty and still counts');
select throws_ok($$select public.list_users(p_order_by => 'id; drop table x')$$, '22023', null, 'only known columns order the list');
-- Whether an index can be used at all (the tables are tiny: sequential scans off).
set local enable_seqscan = off;
select matches(pg_temp.plan($$select v.id from user_sync.listed_profiles v where v.email ilike '%lu-ann%'$$),
  'users_email_trgm_idx', 'a search through the view uses the trigram index');
select doesnt_match(pg_temp.plan($$select u.id from public.users u where u.email ilike '%lu-ann%'$$),
  'users_email_trgm_idx', 'the same search on public.users under RLS cannot (ILIKE is not leakproof)');
reset role;

-- The whole table's total, above 100,000 profiles, is the planner's estimate scaled to the
-- table's size now: a bulk insert (a heal) shows at once, not after the next autovacuum.
create table pg_temp.estimated (n integer, filler text);
insert into pg_temp.estimated select g, repeat('x', 100) from generate_series(1, 10000) g;
analyze pg_temp.estimated;
insert into pg_temp.estimated select g, repeat('x', 100) from generate_series(1, 10000) g;
select ok(user_sync.estimated_rows('pg_temp.estimated') between 19000 and 21000,
  'rows estimated after a bulk insert since the last analyze: about 20,000 (the statistics say 10,000)');
create table pg_temp.never_analyzed (n integer);
select is(user_sync.estimated_rows('pg_temp.never_analyzed'), null, 'no estimate for a table never analyzed (counted instead)');
-- public.users with the statistics of a large table that has half as many pages now (this
-- transaction is rolled back): 300,000 rows then, about 150,000 now.
update pg_catalog.pg_class
set reltuples = 300000, relpages = 2 * pg_catalog.pg_relation_size('public.users') / pg_catalog.current_setting('block_size')::integer
where oid = 'public.users'::regclass;
set local role authenticated;
set local request.jwt.claims = '{"sub": "e0000000-0000-4000-8000-00000000000c", "role": "authenticated"}';
select is((public.list_users(p_limit => 1)->>'total')::bigint, 150000::bigint,
  'an admin''s unfiltered total is the statistics'' rows per page times the pages the table has now');
select is((public.list_users(p_limit => 1)->>'total_is_estimate')::boolean, true, 'and says so');
reset role;

select * from finish();
rollback;
