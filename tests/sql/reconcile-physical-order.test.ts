// reconcile reads both tables in physical order and pairs ids from the primary keys
// (issue 12, speed at 1M-10M). What a user relies on, with committed data (each call
// its own transaction, as sync-all and the cron job run it):
//   1. an incremental pass heals each kind of drift where only that phase can see it:
//      a profile tampered with (the walk of public.users), a profile deleted and an
//      auth user deleted behind the system's back, both of users nobody wrote since
//      (the id merge);
//   2. a rewrite of auth.users in the middle of a pass (VACUUM FULL: every row gets
//      another tid) loses no user: the pass starts over as a full comparison;
//   3. users updated while a pass walks (their rows move to other pages) are healed
//      by the pass after it at the latest;
//   4. however many rows were written since the last pass, and wherever they sit (a bulk
//      update puts every new version together), one batch takes at most its share of
//      them (user_sync.reconcile_batch_writes; eight times as many compared): a bounded call
//      stays bounded.
import assert from "node:assert/strict";
import postgres from "postgres";
import { dbUrl } from "../_support/db.ts";

const sql = () => postgres(dbUrl("supabase_admin"), { max: 1, prepare: false, onnotice: () => {} });

/** n auth users with the given id prefix (8 hex digits); trigger bypassed unless withProfiles. */
async function seed(db: postgres.Sql, prefix: string, n: number, withProfiles: boolean) {
  await db.unsafe(`
    ${withProfiles ? "" : "set session_replication_role = replica;"}
    insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
    select '00000000-0000-0000-0000-000000000000', ('${prefix}-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid,
           'authenticated', 'authenticated', 'walk' || g || '.${prefix}@example.com',
           '{"provider": "email", "providers": ["email"]}', jsonb_build_object('full_name', 'Walk ' || g), now(), now()
    from generate_series(1, ${n}) g;
    reset session_replication_role;`);
}
const uid = (prefix: string, i: number) => `${prefix}-0000-4000-8000-${String(i).padStart(12, "0")}`;

async function cleanup(db: postgres.Sql, prefix: string) {
  await db.unsafe(`delete from public.users where id::text like '${prefix}%'`);
  await db.unsafe(`delete from auth.users where id::text like '${prefix}%'`);
}

// deno-lint-ignore no-explicit-any
type Report = Record<string, any>;

/**
 * Bounded calls of `maxMs` (0: one batch each) until the pass completes, each checked ok;
 * `between` runs after every call that left the pass unfinished (given its report): what a
 * test does while the pass is under way. Their summed report, with every call's report.
 */
async function healAll(
  db: postgres.Sql,
  maxMs = 0,
  between?: (r: Report) => Promise<unknown> | unknown,
) {
  const sum = {
    inserted: 0, updated: 0, deleted: 0, errors: 0, calls: 0, full_compare: false,
    // the completing call's table sizes
    auth_users: null as number | null, profiles: null as number | null,
    reports: [] as Report[],
  };
  for (let i = 0; i < 10_000; i++) {
    const [{ r }] = await db`select user_sync.reconcile(false, 'test', ${maxMs}::integer) as r`;
    assert.equal(r.status, "ok", JSON.stringify(r));
    sum.inserted += r.inserted;
    sum.updated += r.updated;
    sum.deleted += r.deleted;
    sum.errors += r.errors;
    sum.calls++;
    sum.full_compare = r.full_compare;
    sum.auth_users = r.auth_users;
    sum.profiles = r.profiles;
    sum.reports.push(r);
    if (r.complete) return sum;
    await between?.(r);
  }
  throw new Error("the pass never completed");
}

async function sizes(db: postgres.Sql) {
  const [c] = await db`select (select count(*)::int from auth.users) as auth_users,
    (select count(*)::int from public.users) as profiles`;
  return { auth_users: c.auth_users as number, profiles: c.profiles as number };
}
const reported = (r: { auth_users: number | null; profiles: number | null }) => ({
  auth_users: r.auth_users,
  profiles: r.profiles,
});

async function clean(db: postgres.Sql) {
  const [{ s }] = await db`select user_sync.status() as s`;
  return { missing: s.missing, drifted: s.drifted, orphaned: s.orphaned };
}

Deno.test("an incremental pass heals drift that only its profile walk or its id merge can see", async () => {
  const db = sql();
  const prefix = "3a1c0001";
  try {
    await seed(db, prefix, 200, true);
    await db`select user_sync.reconcile(false, 'test')`;
    await db`select user_sync.reconcile(false, 'test')`; // incremental from here on
    await db.begin(async (tx) => {
      await tx`set local session_replication_role = replica`;
      await tx`update public.users set email = 'tampered@example.com' where id = ${uid(prefix, 17)}`;
      await tx`delete from public.users where id = ${uid(prefix, 42)}`;
      await tx`delete from auth.users where id = ${uid(prefix, 99)}`;
    });
    assert.deepEqual(await clean(db), { missing: 1, drifted: 1, orphaned: 1 });
    const [{ r }] = await db`select user_sync.reconcile(false, 'test') as r`;
    assert.deepEqual(
      { inserted: r.inserted, updated: r.updated, deleted: r.deleted, full_compare: r.full_compare, complete: r.complete },
      { inserted: 1, updated: 1, deleted: 1, full_compare: false, complete: true },
    );
    const [p] = await db`select email from public.users where id = ${uid(prefix, 17)}`;
    assert.equal(p.email, `walk17.${prefix}@example.com`, "the tampered email is restored");
    assert.deepEqual(await clean(db), { missing: 0, drifted: 0, orphaned: 0 });
    const [{ r: again }] = await db`select user_sync.reconcile(false, 'test') as r`;
    assert.deepEqual([again.inserted, again.updated, again.deleted], [0, 0, 0], "the next pass writes nothing");
  } finally {
    await cleanup(db, prefix);
    await db.end();
  }
});

Deno.test("VACUUM FULL of auth.users in the middle of a pass loses no user: the pass starts over", async () => {
  const db = sql();
  const prefix = "3a1c0002";
  try {
    await db`select user_sync.reconcile(false, 'test')`;
    await seed(db, prefix, 400, false);
    await db`set user_sync.reconcile_batch_rows = 50`;
    // A few bounded calls: the pass is under way, some profiles made, most not.
    for (let i = 0; i < 3; i++) await db`select user_sync.reconcile(false, 'test', 0)`;
    const [mid] = await db`select phase, walk_after::text as walk_after, finished_at from user_sync.reconcile_progress where not dry_run`;
    assert.equal(mid.finished_at, null, "the pass is unfinished");
    assert.equal(mid.phase, "auth");
    // Rows now live at other tids (the table is rewritten, its dead space gone).
    await db`vacuum full auth.users`;
    const rest = await healAll(db);
    assert.equal(rest.full_compare, true, "the pass after the rewrite compares every user");
    const [{ n }] = await db.unsafe(`select count(*)::int as n from public.users where id::text like '${prefix}%'`);
    assert.equal(n, 400, "every user has a profile");
    assert.deepEqual(await clean(db), { missing: 0, drifted: 0, orphaned: 0 });
  } finally {
    await db`reset user_sync.reconcile_batch_rows`;
    await cleanup(db, prefix);
    await db.end();
  }
});

Deno.test("users written while a pass walks (their rows move) are healed by the next pass at the latest", async () => {
  const db = sql();
  const writer = sql();
  const prefix = "3a1c0003";
  try {
    await seed(db, prefix, 300, true);
    await db`select user_sync.reconcile(false, 'test')`;
    await db`set user_sync.reconcile_batch_rows = 40`;
    await db`select user_sync.reconcile(false, 'test', 0)`; // a pass under way
    // Behind the system's back while it walks: every seeded user renamed in Auth (each
    // row gets a new version, on this page or another), and their profiles removed.
    await writer.begin(async (tx) => {
      await tx`set local session_replication_role = replica`;
      await tx.unsafe(`update auth.users set raw_user_meta_data = '{"full_name": "Moved"}' where id::text like '${prefix}%'`);
      await tx.unsafe(`delete from public.users where id::text like '${prefix}%' and right(id::text, 1) in ('1', '5')`);
    });
    await healAll(db); // finishes the pass under way
    await healAll(db); // and the next one
    const [{ n, moved }] = await db.unsafe(
      `select count(*)::int as n, count(*) filter (where name = 'Moved')::int as moved from public.users where id::text like '${prefix}%'`,
    );
    assert.deepEqual({ n, moved }, { n: 300, moved: 300 });
    assert.deepEqual(await clean(db), { missing: 0, drifted: 0, orphaned: 0 });
  } finally {
    await db`reset user_sync.reconcile_batch_rows`;
    await cleanup(db, prefix);
    await Promise.all([db.end(), writer.end()]);
  }
});

Deno.test("a bulk change since the last pass is healed a bounded batch at a time, in every phase", async () => {
  const db = sql();
  const prefix = "3a1c0004";
  try {
    await seed(db, prefix, 800, true);
    await healAll(db);
    await healAll(db); // incremental from here on
    // Behind the system's back, each bulk in one statement (its new row versions together):
    await db.begin(async (tx) => {
      await tx`set local session_replication_role = replica`;
      // the auth walk's candidates: 300 renamed in Auth, 200 new users without a profile
      await tx.unsafe(`update auth.users set raw_user_meta_data = '{"full_name": "Bulk"}'
        where id::text like '${prefix}%' and right(id::text, 3)::int between 1 and 300`);
      await tx.unsafe(`insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
        select '00000000-0000-0000-0000-000000000000', ('${prefix}-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid,
               'authenticated', 'authenticated', 'walk' || g || '.${prefix}@example.com',
               '{"provider": "email", "providers": ["email"]}', jsonb_build_object('full_name', 'Walk ' || g), now(), now()
        from generate_series(801, 1000) g`);
      // the profile walk's: 200 profiles tampered with
      await tx.unsafe(`update public.users set email = 'bulk.' || email
        where id::text like '${prefix}%' and right(id::text, 3)::int between 301 and 500`);
      // the id merge's: 150 profiles deleted, 150 auth users deleted (orphans)
      await tx.unsafe(`delete from public.users
        where id::text like '${prefix}%' and right(id::text, 3)::int between 501 and 650`);
      await tx.unsafe(`delete from auth.users
        where id::text like '${prefix}%' and right(id::text, 3)::int between 651 and 800`);
    });
    await db`set user_sync.reconcile_batch_writes = 50`;
    // p_max_ms 0: each call takes one batch.
    const sum = await healAll(db);
    assert.ok(sum.reports.every((r) => r.full_compare === false), "an incremental pass");
    const most = Math.max(...sum.reports.map((r) => Math.max(r.inserted + r.updated, r.deleted)));
    assert.ok(most <= 50, `a batch wrote ${most} profiles, more than its 50`);
    assert.deepEqual(
      { inserted: sum.inserted, updated: sum.updated, deleted: sum.deleted },
      { inserted: 350, updated: 500, deleted: 150 },
    );
    assert.ok(sum.calls >= 20, `${sum.calls} calls: the 1,000 rows to heal took at least 20 batches of 50`);
    const [{ n, bulk, tampered }] = await db.unsafe(
      `select count(*)::int as n, count(*) filter (where name = 'Bulk')::int as bulk,
              count(*) filter (where email like 'bulk.%')::int as tampered
       from public.users where id::text like '${prefix}%'`,
    );
    assert.deepEqual({ n, bulk, tampered }, { n: 850, bulk: 300, tampered: 0 });
    assert.deepEqual(await clean(db), { missing: 0, drifted: 0, orphaned: 0 });
  } finally {
    await db`reset user_sync.reconcile_batch_writes`;
    await cleanup(db, prefix);
    await db.end();
  }
});

/** Where the last finished pass ended (deleted: it did not merge the ids) and the log's size. */
async function lastPass(db: postgres.Sql) {
  const [p] = await db`select phase, finished_at is not null as finished,
    (select count(*)::int from user_sync.deleted_profiles) as logged
    from user_sync.reconcile_progress where not dry_run`;
  return { phase: p.phase as string, finished: p.finished as boolean, logged: p.logged as number };
}

Deno.test("an incremental pass inserts the profiles deleted since without merging ids, and merges when the walks disagree", async () => {
  const db = sql();
  const prefix = "3a1c0005";
  try {
    await seed(db, prefix, 200, true);
    await healAll(db);
    await healAll(db); // incremental from here on
    await db`delete from user_sync.deleted_profiles`; // what other tests left
    await healAll(db);
    assert.deepEqual(await lastPass(db), { phase: "deleted", finished: true, logged: 0 }, "a no-op pass ends without the merge");

    // Profiles deleted by hand (as an app would) and under replica mode (as a restore
    // would); an auth user hard-deleted by Auth (its profile goes by the cascade).
    await db`delete from public.users where id = ${uid(prefix, 42)}`;
    await db.begin(async (tx) => {
      await tx`set local session_replication_role = replica`;
      await tx`delete from public.users where id = ${uid(prefix, 43)}`;
    });
    await db`delete from auth.users where id = ${uid(prefix, 77)}`;
    assert.equal((await lastPass(db)).logged, 2, "both deleted profiles are logged, the cascade is not");
    assert.deepEqual(await clean(db), { missing: 2, drifted: 0, orphaned: 0 });

    // A dry run reports them and consumes nothing.
    const [{ r: dry }] = await db`select user_sync.reconcile(true, 'test') as r`;
    assert.equal(dry.inserted, 2, JSON.stringify(dry));
    assert.deepEqual(reported(dry), await sizes(db), "a dry run reports the table sizes as they are");
    assert.equal((await lastPass(db)).logged, 2, "a dry run leaves the log");

    const healed = await healAll(db);
    assert.deepEqual([healed.inserted, healed.deleted, healed.full_compare], [2, 0, false]);
    assert.deepEqual(reported(healed), await sizes(db), "the report counts each profile inserted again once");
    assert.deepEqual(await lastPass(db), { phase: "deleted", finished: true, logged: 0 }, "no merge; the log consumed");
    assert.deepEqual(await clean(db), { missing: 0, drifted: 0, orphaned: 0 });

    // An auth user deleted under replica mode leaves an orphan nothing logs: the walks
    // disagree (one profile more than auth users) and the merge removes it.
    await db.begin(async (tx) => {
      await tx`set local session_replication_role = replica`;
      await tx`delete from auth.users where id = ${uid(prefix, 99)}`;
    });
    assert.deepEqual(await clean(db), { missing: 0, drifted: 0, orphaned: 1 });
    const merged = await healAll(db);
    assert.deepEqual([merged.inserted, merged.deleted], [0, 1]);
    assert.deepEqual(reported(merged), await sizes(db));
    assert.equal((await lastPass(db)).phase, "ids", "the pass merged the ids");
    assert.deepEqual(await clean(db), { missing: 0, drifted: 0, orphaned: 0 });

    // More deletions than a batch writes: the log is taken a batch at a time (each call
    // of p_max_ms 0 takes one batch: at most 5 profiles), its entries consumed as it
    // goes, the remaining work reported, and still no merge.
    await db`set user_sync.reconcile_batch_writes = 5`;
    await db.unsafe(`delete from public.users where id::text like '${prefix}%' and right(id::text, 3)::int between 101 and 112`);
    const calls = (await healAll(db)).reports.map((r) => ({ inserted: r.inserted, remaining: r.remaining, complete: r.complete }));
    assert.equal(calls.reduce((n, c) => n + c.inserted, 0), 12);
    assert.ok(calls.every((c) => c.inserted <= 5), `a call inserted more than a batch's 5: ${JSON.stringify(calls)}`);
    assert.ok(calls.filter((c) => c.inserted > 0).length >= 3, "12 deletions took at least three batches of 5");
    const midLog = calls.filter((c) => c.inserted > 0 && !c.complete);
    assert.ok(midLog.length > 0 && midLog.every((c) => (c.remaining ?? 0) > 0), `remaining while the log is taken: ${JSON.stringify(calls)}`);
    assert.deepEqual(await lastPass(db), { phase: "deleted", finished: true, logged: 0 }, "no merge; the log consumed");
    assert.deepEqual(await clean(db), { missing: 0, drifted: 0, orphaned: 0 });

    // A drift the profile walk writes (tampered e-mails: their new versions land ahead of
    // the walk) with logged deletions: the walk counts each profile once, so the walks
    // agree and the pass ends without the merge.
    await db`set user_sync.reconcile_batch_rows = 20`;
    await db.begin(async (tx) => {
      await tx`set local session_replication_role = replica`;
      await tx.unsafe(`update public.users set email = 'tampered.' || email
        where id::text like '${prefix}%' and right(id::text, 3)::int between 1 and 30`);
      await tx.unsafe(`delete from public.users where id::text like '${prefix}%' and right(id::text, 3)::int between 31 and 33`);
    });
    const tampered = await healAll(db, 0);
    await db`reset user_sync.reconcile_batch_rows`;
    assert.deepEqual([tampered.inserted, tampered.updated, tampered.deleted], [3, 30, 0]);
    assert.deepEqual(reported(tampered), await sizes(db));
    assert.deepEqual(await lastPass(db), { phase: "deleted", finished: true, logged: 0 }, "no merge after a drift");
    assert.deepEqual(await clean(db), { missing: 0, drifted: 0, orphaned: 0 });

    // More deletions than a batch writes and an orphan: the log is taken, the walks
    // disagree, and the merge runs after it.
    await db.unsafe(`delete from public.users where id::text like '${prefix}%' and right(id::text, 3)::int between 121 and 132`);
    await db.begin(async (tx) => {
      await tx`set local session_replication_role = replica`;
      await tx`delete from auth.users where id = ${uid(prefix, 140)}`;
    });
    const [{ r: dryBoth }] = await db`select user_sync.reconcile(true, 'test') as r`;
    assert.deepEqual([dryBoth.inserted, dryBoth.deleted], [12, 1], JSON.stringify(dryBoth));
    assert.deepEqual(reported(dryBoth), await sizes(db), "a dry run that merges reports the sizes as they are");
    const both = await healAll(db, 0);
    assert.deepEqual([both.inserted, both.deleted], [12, 1]);
    assert.deepEqual(reported(both), await sizes(db), "the report's sizes after the log and the merge");
    assert.deepEqual(await lastPass(db), { phase: "ids", finished: true, logged: 0 }, "merged after the log");
    assert.deepEqual(await clean(db), { missing: 0, drifted: 0, orphaned: 0 });

    // Open errors of users now in sync: a pass whose walks agree resolves them all at
    // once when no more are open than a batch compares (8 x 5 here); with more, a batch
    // of them at a time, without merging the ids.
    await db`update user_sync.errors set resolved_at = now() where resolved_at is null`; // what other tests left
    const openErrors = async (n: number) => {
      await db.unsafe(`insert into user_sync.errors (user_id, source, sqlstate, message)
        select id, 'trigger', 'XX000', 'test' from public.users
        where id::text like '${prefix}%' order by id limit ${n}`);
      const healed = await healAll(db, 0);
      const [{ open }] = await db`select count(*)::int as open from user_sync.errors where resolved_at is null`;
      return { phase: (await lastPass(db)).phase, open, written: healed.inserted + healed.updated + healed.deleted };
    };
    assert.deepEqual(await openErrors(40), { phase: "deleted", open: 0, written: 0 }, "40 open errors: resolved without the merge");
    assert.deepEqual(await openErrors(41), { phase: "errors", open: 0, written: 0 }, "41 open errors: resolved a batch at a time");
    assert.deepEqual(await openErrors(150), { phase: "errors", open: 0, written: 0 }, "150 open errors: resolved a batch at a time");
  } finally {
    await db`reset user_sync.reconcile_batch_writes`;
    await db`reset user_sync.reconcile_batch_rows`;
    await cleanup(db, prefix);
    await db.end();
  }
});

Deno.test("users who sign up while a pass walks do not make it merge the ids", async () => {
  const db = sql();
  const prefix = "3a1c0006";
  try {
    await seed(db, prefix, 300, true);
    await healAll(db);
    await healAll(db); // incremental from here on
    await db`delete from user_sync.deleted_profiles`; // what other tests left
    await db`update user_sync.errors set resolved_at = now() where resolved_at is null`;
    // One batch of 20 rows per call; a sign-up (its profile inserted by the trigger) after
    // each of the first five batches of each walk. The auth walk may already have passed
    // where a new auth row goes, while the profile walk still meets the new profile.
    await db`set user_sync.reconcile_batch_rows = 20`;
    const signUps: Record<string, number> = { auth: 0, profiles: 0 };
    let n = 0;
    await healAll(db, 0, async () => {
      const { phase } = await lastPass(db);
      if (phase in signUps && signUps[phase] < 5) {
        signUps[phase]++;
        n++;
        await db.unsafe(`insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
          values ('00000000-0000-0000-0000-000000000000', '${uid(prefix, 1000 + n)}', 'authenticated', 'authenticated',
                  'during${n}.${prefix}@example.com', '{"provider": "email", "providers": ["email"]}', '{}', now(), now())`);
      }
    });
    assert.deepEqual(signUps, { auth: 5, profiles: 5 }, "sign-ups during both walks");
    assert.deepEqual(await lastPass(db), { phase: "deleted", finished: true, logged: 0 }, "no merge");
    assert.deepEqual(await clean(db), { missing: 0, drifted: 0, orphaned: 0 });
  } finally {
    await db`reset user_sync.reconcile_batch_rows`;
    await cleanup(db, prefix);
    await db.end();
  }
});

/** The id buckets the last pass merged (null: every id) and its phase. */
async function merged(db: postgres.Sql) {
  const [p] = await db`select phase, merge_buckets from user_sync.reconcile_progress where not dry_run`;
  return { phase: p.phase as string, buckets: p.merge_buckets as number[] | null };
}

Deno.test("sign-ins that move auth rows while a pass walks make it merge only the id buckets that disagree", async () => {
  const db = sql();
  const auth = postgres(dbUrl("supabase_auth_admin"), { max: 1, prepare: false, onnotice: () => {} });
  const prefix = "3a1c0007";
  try {
    await seed(db, prefix, 400, true);
    await healAll(db);
    await healAll(db); // incremental from here on
    await db`delete from user_sync.deleted_profiles`; // what other tests left
    await db`update user_sync.errors set resolved_at = now() where resolved_at is null`;
    await db`set user_sync.reconcile_batch_rows = 20`;

    // One pass, a batch of 20 rows per call; once the auth walk has passed some of the
    // seeded users, GoTrue signs them in (last_sign_in_at, as supabase_auth_admin): where
    // a page is full, the new row version goes to another page, and one ahead of the walk
    // is met twice. Those users' auth rows are counted once or twice, never less.
    const pass = async () => {
      let signedIn = 0;
      await healAll(db, 0, async () => {
        const [p] = await db`select phase, walk_after::text as walk_after from user_sync.reconcile_progress where not dry_run`;
        if (p.phase === "auth" && signedIn === 0 && p.walk_after) {
          const rows = await auth.unsafe(
            `update auth.users set last_sign_in_at = now()
             where id::text like '${prefix}%' and ctid <= '${p.walk_after}'::tid returning id`,
          );
          signedIn = rows.length;
        }
      });
      assert.ok(signedIn > 0, "users signed in behind the walk");
    };
    await pass();
    // Where a new version went ahead of the walk, the walks disagreed, and the recount by
    // id bucket (nobody writing while it ran) agreed: no id merged. Before, every id was.
    const moved = await merged(db);
    assert.ok(
      moved.phase === "deleted" || (moved.phase === "ids" && moved.buckets !== null && moved.buckets.length === 0),
      `no id merged: ${JSON.stringify(moved)}`,
    );
    await healAll(db); // (a sign-in whose new row version went behind the walk is the next pass's)
    assert.deepEqual(await clean(db), { missing: 0, drifted: 0, orphaned: 0 });

    // A profile deleted where no log knows (its log entry gone too): the walks disagree
    // whatever the sign-ins did (they only add auth rows to the count), the recount finds
    // its bucket alone, and the merge of that bucket inserts it again.
    const lost = uid(prefix, 399);
    await db`delete from public.users where id = ${lost}`;
    await db`delete from user_sync.deleted_profiles where user_id = ${lost}`;
    assert.deepEqual(await clean(db), { missing: 1, drifted: 0, orphaned: 0 });
    await pass();
    const [{ bucket }] = await db`select user_sync.reconcile_bucket(${lost}) as bucket`;
    assert.deepEqual(await merged(db), { phase: "ids", buckets: [bucket] }, "only the lost profile's bucket merged");
    assert.equal((await clean(db)).missing, 0, "the profile is back");
    await healAll(db);
    assert.deepEqual(await clean(db), { missing: 0, drifted: 0, orphaned: 0 });
  } finally {
    await db`reset user_sync.reconcile_batch_rows`;
    await cleanup(db, prefix);
    await auth.end();
    await db.end();
  }
});
