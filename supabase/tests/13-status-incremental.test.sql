-- user_sync.status() after a finished reconcile pass counts from row versions (the
-- field rules only for rows written since): its counts still see every drift, missing
-- and deleted profile, exactly as a derivation of every profile would. It compares the
-- id sets by size and fingerprint before it joins them: a missing profile and an orphan
-- that offset each other in number are still both counted.
begin;
select plan(10);

insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
select ('f2000000-0000-4000-8000-00000000000' || g)::uuid, 'authenticated', 'authenticated',
       'status' || g || '@example.com', '{"provider": "email", "providers": ["email"]}',
       jsonb_build_object('full_name', 'Status ' || g), now(), now()
from generate_series(1, 5) g;

select is((user_sync.reconcile() ->> 'complete')::boolean, true, 'a reconcile pass finishes');
select ok((select finished_at is not null and errors = 0 from user_sync.reconcile_progress where not dry_run),
  'the pass left a horizon status() counts from');
select is(user_sync.status() -> 'drifted', '0'::jsonb, 'in sync: nothing drifted');

-- Behind the trigger's back: metadata changes, a profile is edited, one is deleted.
alter table auth.users disable trigger user_sync_on_auth_user_update;
update auth.users set raw_user_meta_data = '{"full_name": "Renamed"}' where id = 'f2000000-0000-4000-8000-000000000001';
alter table auth.users enable trigger user_sync_on_auth_user_update;
alter table public.users disable trigger user;
update public.users set email = 'tampered@example.com', synced_at = synced_at where id = 'f2000000-0000-4000-8000-000000000002';
delete from public.users where id = 'f2000000-0000-4000-8000-000000000003';
alter table public.users enable trigger user;

select is(user_sync.status() -> 'drifted', '2'::jsonb, 'a metadata change and a tampered profile count as drifted');
select is(user_sync.status() -> 'missing', '1'::jsonb, 'a deleted profile counts as missing');
select is(user_sync.status() -> 'auth_users', to_jsonb((select count(*) from auth.users)), 'auth_users counts every auth user');

select user_sync.reconcile();
select is(user_sync.status() - 'open_errors' - 'health' - 'version' - 'heal' - 'last_run',
  jsonb_build_object('auth_users', (select count(*) from auth.users), 'profiles', (select count(*) from public.users),
                     'missing', 0, 'orphaned', 0, 'drifted', 0),
  'after the next reconcile every count is back to in sync');

-- The same ids on both sides (no join): a tampered profile is still counted as drifted.
alter table public.users disable trigger user;
update public.users set email = 'tampered.again@example.com', synced_at = synced_at where id = 'f2000000-0000-4000-8000-000000000004';
alter table public.users enable trigger user;
select is(user_sync.status() - 'open_errors' - 'health' - 'version' - 'heal' - 'last_run',
  jsonb_build_object('auth_users', (select count(*) from auth.users), 'profiles', (select count(*) from public.users),
                     'missing', 0, 'orphaned', 0, 'drifted', 1),
  'the same ids on both sides: nothing missing or orphaned, the tampered profile drifted');

-- Behind the system's back, a profile deleted and a profile of no auth user inserted: as
-- many profiles as auth users, but not the same ids.
set local session_replication_role = replica;
delete from public.users where id = 'f2000000-0000-4000-8000-000000000005';
insert into public.users (id, email) values ('f2000000-0000-4000-8000-0000000000ff', 'orphan@example.com');
set local session_replication_role = origin;
select is((select count(*) from auth.users), (select count(*) from public.users), 'as many profiles as auth users');
select is((select jsonb_build_object('missing', s -> 'missing', 'orphaned', s -> 'orphaned') from (select user_sync.status() as s) x),
  '{"missing": 1, "orphaned": 1}'::jsonb,
  'a missing profile and an orphan that offset each other in number are both counted');

select * from finish();
rollback;
