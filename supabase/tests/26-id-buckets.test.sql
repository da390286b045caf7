-- The id buckets an incremental reconcile pass counts again and merges when its walks
-- disagree: the first 12 bits of the id, the same in the recount's expression, for one
-- id and as a range; what a pass merging some buckets reports as left.
begin;
select plan(5);

select is(
  array[user_sync.reconcile_bucket('00000000-0000-4000-8000-000000000000'),
        user_sync.reconcile_bucket('abcfffff-ffff-4fff-bfff-ffffffffffff'),
        user_sync.reconcile_bucket('fff00000-0000-4000-8000-000000000000')],
  array[0, 2748, 4095],
  'a bucket is the first three hex digits of the id');

select is(user_sync.reconcile_bucket_last_id(2748), 'abcfffff-ffff-ffff-ffff-ffffffffffff'::uuid,
  'the last id of a bucket: its three digits, the rest all ones');
select is(array[user_sync.reconcile_bucket_last_id(-1), user_sync.reconcile_bucket_last_id(4096)], array[null, null]::uuid[],
  'no bucket before the first or after the last');

-- The recount's expression (dynamic SQL over every row) and the function agree.
create temporary table ids on commit drop as select gen_random_uuid() as id from generate_series(1, 2000);
do $$
begin
  execute format('create temporary table expr_buckets on commit drop as select id, %s as bucket from ids',
    user_sync.reconcile_bucket_sql('id'));
end $$;
select is((select count(*)::int from expr_buckets where bucket <> user_sync.reconcile_bucket(id)), 0,
  'the recount''s expression gives every id the bucket reconcile_bucket() gives it');

-- A pass merging buckets 1, 2748, 2749 and 4000 of 4,096,000 users, within bucket 2748:
-- three buckets left, a thousand users each.
select is(user_sync.reconcile_remaining(row(false, 1, now(), null, false, null, '{}', '1'::xid8, 'basis',
    'abc00000-0000-4000-8000-000000000000', 0, 4096000, 0, 0, 0, '{}', 1000, null, now(), 'ids', null, null, 0,
    null, '{1,2748,2749,4000}')::user_sync.reconcile_progress),
  3000::bigint, 'what a pass merging some buckets has left: the buckets from the current one on');

select * from finish();
rollback;
