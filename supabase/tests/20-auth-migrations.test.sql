-- Supabase Auth migrates its own schema as supabase_auth_admin. Nothing of ours may
-- hold a catalog dependency on an auth.users column but the foreign key on id, so
-- that Auth can ALTER COLUMN ... TYPE any column, and sign-ups keep creating
-- profiles right after.
begin;
select plan(11);

-- Objects that depend on a column of auth.users and are not Auth's own: ours (any
-- object outside schema auth, and any trigger on auth.users calling a function
-- outside auth), except the foreign key public.users(id) -> auth.users(id).
select is_empty($$
  select pg_describe_object(d.classid, d.objid, d.objsubid)
  from pg_depend d
  left join pg_trigger t on d.classid = 'pg_trigger'::regclass and t.oid = d.objid
  left join pg_proc tf on tf.oid = t.tgfoid
  left join pg_rewrite rw on d.classid = 'pg_rewrite'::regclass and rw.oid = d.objid
  left join pg_constraint co on d.classid = 'pg_constraint'::regclass and co.oid = d.objid
  left join pg_attrdef ad on d.classid = 'pg_attrdef'::regclass and ad.oid = d.objid
  left join pg_class c on c.oid = coalesce(
    t.tgrelid, rw.ev_class, co.conrelid, ad.adrelid,
    case when d.classid = 'pg_class'::regclass then d.objid end)
  where d.refclassid = 'pg_class'::regclass
    and d.refobjid = 'auth.users'::regclass
    and d.refobjsubid > 0
    and (c.relnamespace is distinct from 'auth'::regnamespace
         or (t.oid is not null and tf.pronamespace <> 'auth'::regnamespace))
    and not (co.contype = 'f' and co.conrelid = 'public.users'::regclass
             and d.refobjsubid = (select attnum from pg_attribute where attrelid = 'auth.users'::regclass and attname = 'id'))
$$, 'no object of ours depends on an auth.users column but the foreign key on id');

-- As Auth's migrations would: change the type of every column we read, and back.
set local role supabase_auth_admin;
set local search_path = auth;
alter table users alter column phone type varchar(32);
alter table users alter column phone type text;
alter table users alter column email type text;
alter table users alter column email type varchar(255);
alter table users alter column raw_user_meta_data type json using raw_user_meta_data::json;
alter table users alter column raw_user_meta_data type jsonb using raw_user_meta_data::jsonb;
alter table users alter column raw_app_meta_data type json using raw_app_meta_data::json;
alter table users alter column raw_app_meta_data type jsonb using raw_app_meta_data::jsonb;
alter table users alter column last_sign_in_at type timestamp using last_sign_in_at at time zone 'UTC';
alter table users alter column last_sign_in_at type timestamptz using last_sign_in_at at time zone 'UTC';
alter table users alter column deleted_at type timestamp using deleted_at at time zone 'UTC';
alter table users alter column deleted_at type timestamptz using deleted_at at time zone 'UTC';
alter table users alter column created_at type timestamp using created_at at time zone 'UTC';
alter table users alter column created_at type timestamptz using created_at at time zone 'UTC';
alter table users alter column is_anonymous drop default;
alter table users alter column is_anonymous type smallint using is_anonymous::integer;
alter table users alter column is_anonymous type boolean using is_anonymous <> 0;
alter table users alter column is_anonymous set default false;
-- (pgTAP is not visible to supabase_auth_admin: a refused ALTER aborts the file.)

-- A sign-up right after: the profile is created.
insert into users (id, aud, role, email, phone, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
values ('e0000000-0000-4000-8000-000000000001', 'authenticated', 'authenticated', 'migrated@example.com', '15550001',
        '{"provider": "email", "providers": ["email"]}', '{"full_name": "After Migration"}', now(), now());
-- And a metadata change of that user follows.
update users set raw_user_meta_data = '{"full_name": "Renamed After Migration"}', last_sign_in_at = now()
where id = 'e0000000-0000-4000-8000-000000000001';
reset role;
set local search_path = public, extensions;

select is((select name from public.users where id = 'e0000000-0000-4000-8000-000000000001'),
  'Renamed After Migration', 'after Auth changed the column types, a sign-up and an update sync at once');
select is((select email || ' ' || phone from public.users where id = 'e0000000-0000-4000-8000-000000000001'),
  'migrated@example.com 15550001', 'email and phone are mirrored');
select is((select count(*)::int from user_sync.errors where user_id = 'e0000000-0000-4000-8000-000000000001'),
  0, 'no sync error recorded');

-- Within one session: a type change under the trigger's cached plans ("type of parameter
-- does not match") may not fail Auth's write, nor stop the sync: the trigger lets the
-- session plan again, both ways.
set local role supabase_auth_admin;
set local search_path = auth;
update users set raw_user_meta_data = '{"full_name": "Cached Plan"}' where id = 'e0000000-0000-4000-8000-000000000001';
alter table users alter column raw_user_meta_data type json using raw_user_meta_data::json;
update users set raw_user_meta_data = '{"full_name": "While Json"}' where id = 'e0000000-0000-4000-8000-000000000001';
insert into users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
values ('e0000000-0000-4000-8000-000000000002', 'authenticated', 'authenticated', 'json@example.com',
        '{"provider": "email", "providers": ["email"]}', '{"full_name": "Signed Up While Json"}', now(), now());
alter table users alter column raw_user_meta_data type jsonb using raw_user_meta_data::jsonb;
reset role;
set local search_path = public, extensions;
select is((select raw_user_meta_data::text from auth.users where id = 'e0000000-0000-4000-8000-000000000001'),
  '{"full_name": "While Json"}', 'an update while the column is json goes through (fail-open)');
select is((select count(*)::int from auth.users where id = 'e0000000-0000-4000-8000-000000000002'),
  1, 'a sign-up while the column is json goes through');
select is((select name from public.users where id = 'e0000000-0000-4000-8000-000000000001'),
  'While Json', 'the update while the column is json, in the session that planned it as jsonb, synced');
set local role supabase_auth_admin;
set local search_path = auth;
update users set raw_user_meta_data = '{"full_name": "Jsonb Again"}' where id = 'e0000000-0000-4000-8000-000000000001';
reset role;
set local search_path = public, extensions;
select is((select name from public.users where id = 'e0000000-0000-4000-8000-000000000001'),
  'Jsonb Again', 'back to jsonb, the next write syncs in the same session');
select is((select name from public.users where id = 'e0000000-0000-4000-8000-000000000002'),
  'Signed Up While Json', 'the sign-up while the column is json, in the session that planned it as jsonb, has its profile at once (the trigger casts the row it inserts)');
select is((user_sync.reconcile() ->> 'inserted')::int, 0, 'reconcile finds no profile missing');
select is((select count(*)::int from user_sync.errors where user_id in ('e0000000-0000-4000-8000-000000000001', 'e0000000-0000-4000-8000-000000000002') and resolved_at is null),
  0, 'and every error is resolved');

select * from finish();
rollback;
