-- user_sync.status() after a finished reconcile pass counts from row versions (the
-- field rules only for rows written since): its counts still see every drift, missing
-- and deleted profile, exactly as a derivation of every profile would.
begin;
select plan(7);

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

select * from finish();
rollback;
