// Auth never waits on us for more than 2 s, and never fails because of us (issue 10
// item 3), and a role change racing an Auth write neither deadlocks nor lags (issue 11
// item 3). Each scenario uses real concurrent sessions: one plays Supabase Auth
// (supabase_auth_admin, search_path auth), others hold locks as a reconcile, an app
// table's foreign key or an admin's role change would.
import assert from "node:assert/strict";
import postgres from "postgres";
import { dbUrl, insertAuthUser, withProfileTrigger } from "../_support/db.ts";

const ADMIN_DB_URL = dbUrl("supabase_admin");
const AUTH_DB_URL = dbUrl("supabase_auth_admin");
const session = (url = ADMIN_DB_URL) => postgres(url, { max: 1, prepare: false, onnotice: () => {} });
const connect = () => postgres(ADMIN_DB_URL, { max: 4, prepare: false, onnotice: () => {} });

async function newUser(sql: postgres.Sql, tag: string): Promise<string> {
  const id = `ae17${crypto.randomUUID().slice(4)}`;
  await sql`
    insert into auth.users (instance_id, id, aud, role, email, phone, raw_app_meta_data, raw_user_meta_data,
                            created_at, updated_at, last_sign_in_at)
    values ('00000000-0000-0000-0000-000000000000', ${id}, 'authenticated', 'authenticated',
            ${`${tag}.${id}@example.com`}, ${`1555${Math.floor(Math.random() * 1e9)}`},
            '{"provider": "google", "providers": ["google"]}', ${sql.json({ full_name: `Wait ${tag}` })},
            now(), now(), now())`;
  return id;
}

/** Opens a transaction on a dedicated session and keeps it open until release(). */
async function holdTx(url: string, statements: (tx: postgres.TransactionSql) => Promise<unknown>) {
  const sql = session(url);
  let release!: () => void;
  let ready!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const isReady = new Promise<void>((r) => (ready = r));
  const done = sql.begin(async (tx) => {
    await statements(tx);
    ready();
    await released;
  });
  await isReady;
  return {
    release: async () => {
      release();
      await done;
      await sql.end();
    },
  };
}

async function openErrors(sql: postgres.Sql, id: string) {
  return await sql`select sqlstate, message from user_sync.errors where user_id = ${id} and resolved_at is null order by id`;
}

Deno.test("Auth waits on us at most 2 s per transaction, fails never", async (t) => {
  const sql = connect();
  try {
    await t.step("a phone change of a user whose profile a reconcile holds: done within 2 s, healed later", async () => {
      const id = await newUser(sql, "phone");
      // A reconcile that wrote this profile and has not committed yet.
      const reconcile = await holdTx(ADMIN_DB_URL, (tx) =>
        tx`update public.users set synced_at = clock_timestamp() where id = ${id}`);
      const auth = session(AUTH_DB_URL);
      try {
        const t0 = performance.now();
        await auth`update users set phone = '15550009999', updated_at = now() where id = ${id}`;
        const ms = performance.now() - t0;
        assert.ok(ms < 2500, `the phone change waited ${Math.round(ms)} ms`);
        assert.ok(ms >= 1900, `it waited the budget, not less (${Math.round(ms)} ms): the reconcile holds the row`);
      } finally {
        await auth.end();
        await reconcile.release();
      }
      const [au] = await sql`select phone from auth.users where id = ${id}`;
      assert.equal(au.phone, "15550009999", "Auth's write went through");
      assert.deepEqual((await openErrors(sql, id)).map((e) => e.sqlstate), ["55P03"], "the give-up is recorded");
      await sql`select user_sync.sync_user(${id})`;
      const [p] = await sql`select phone from public.users where id = ${id}`;
      assert.equal(p.phone, "15550009999", "the next sync heals it");
      assert.equal((await openErrors(sql, id)).length, 0);
    });

    await t.step("a sign-up while its role's row is locked (an admin editing roles): done within 2 s, healed later", async () => {
      const id = `ae17${crypto.randomUUID().slice(4)}`;
      const admin = await holdTx(ADMIN_DB_URL, (tx) => tx`select 1 from user_sync.roles where role = 'user' for update`);
      const auth = session(AUTH_DB_URL);
      try {
        const t0 = performance.now();
        await auth.begin((tx) =>
          insertAuthUser(tx, {
            id,
            email: `signup.${id}@example.com`,
            appMeta: { provider: "email", providers: ["email"] },
            userMeta: { full_name: "Locked Role" },
          })
        );
        const ms = performance.now() - t0;
        assert.ok(ms < 2500, `the sign-up waited ${Math.round(ms)} ms`);
        assert.ok(ms >= 1900, `it waited the budget, not less (${Math.round(ms)} ms): the role's row is locked`);
      } finally {
        await auth.end();
        await admin.release();
      }
      assert.equal((await sql`select count(*)::int as n from auth.users where id = ${id}`)[0].n, 1, "the sign-up went through");
      assert.deepEqual((await openErrors(sql, id)).map((e) => e.sqlstate), ["55P03"], "the give-up is recorded");
      await sql`select user_sync.sync_user(${id})`;
      const [p] = await sql`select name, role from public.users where id = ${id}`;
      assert.deepEqual({ ...p }, { name: "Locked Role", role: "user" }, "the next sync heals it");
    });

    await t.step("an OAuth sign-in writes the user twice in one transaction: 2 s in all, not 2 s each", async () => {
      const id = await newUser(sql, "oauth");
      const reconcile = await holdTx(ADMIN_DB_URL, (tx) =>
        tx`update public.users set synced_at = clock_timestamp() where id = ${id}`);
      const auth = session(AUTH_DB_URL);
      try {
        const t0 = performance.now();
        await auth.begin(async (tx) => {
          await tx`update users set raw_user_meta_data = raw_user_meta_data || '{"picture": "https://example.com/1.png"}' where id = ${id}`;
          await tx`update users set last_sign_in_at = now(), raw_app_meta_data = raw_app_meta_data || '{"providers": ["google", "github"]}' where id = ${id}`;
        });
        const ms = performance.now() - t0;
        assert.ok(ms < 2500, `both writes together waited ${Math.round(ms)} ms`);
      } finally {
        await auth.end();
        await reconcile.release();
      }
      const [au] = await sql`select raw_app_meta_data -> 'providers' as providers from auth.users where id = ${id}`;
      assert.deepEqual(au.providers, ["google", "github"], "both writes went through");
    });

    await t.step("a statement_timeout while the trigger waits (query_canceled) does not fail the sign-in", async () => {
      const id = await newUser(sql, "timeout");
      const reconcile = await holdTx(ADMIN_DB_URL, (tx) =>
        tx`update public.users set synced_at = clock_timestamp() where id = ${id}`);
      const auth = session(AUTH_DB_URL);
      try {
        await auth.begin(async (tx) => {
          await tx`set local statement_timeout = '300ms'`;
          await tx`update users set raw_user_meta_data = '{"full_name": "Timed Out"}' where id = ${id}`;
        });
      } finally {
        await auth.end();
        await reconcile.release();
      }
      const [au] = await sql`select raw_user_meta_data ->> 'full_name' as n from auth.users where id = ${id}`;
      assert.equal(au.n, "Timed Out", "Auth's write went through");
      assert.deepEqual((await openErrors(sql, id)).map((e) => e.sqlstate), ["57014"], "the cancel is recorded");
    });

    await t.step("a statement_timeout while a sign-up's profile is written stops the sync there, the sign-up goes through", async () => {
      const id = `ae17${crypto.randomUUID().slice(4)}`;
      // An app's trigger on public.users that takes a second for this user.
      const slowProfile = {
        name: "ae17_slow_profile",
        level: "row" as const,
        body: `
          if new.email like 'slow.%' then perform pg_sleep(1); end if;
          return new;`,
      };
      const auth = session(AUTH_DB_URL);
      try {
        const ms = await withProfileTrigger(sql, slowProfile, async () => {
          const t0 = performance.now();
          await auth.begin(async (tx) => {
            await tx`set local statement_timeout = '300ms'`;
            await insertAuthUser(tx, {
              id,
              email: `slow.${id}@example.com`,
              appMeta: { provider: "email", providers: ["email"] },
              userMeta: { full_name: "Slow Profile" },
            });
          });
          return performance.now() - t0;
        });
        assert.ok(ms < 900, `the sign-up took ${Math.round(ms)} ms: the sync did not start over after the timeout`);
      } finally {
        await auth.end();
      }
      assert.equal((await sql`select count(*)::int as n from auth.users where id = ${id}`)[0].n, 1, "the sign-up went through");
      assert.deepEqual((await openErrors(sql, id)).map((e) => e.sqlstate), ["57014"], "the cancel is recorded");
      await sql`select user_sync.sync_user(${id})`;
      assert.equal((await sql`select name from public.users where id = ${id}`)[0].name, "Slow Profile", "the next sync heals it");
    });
  } finally {
    await sql`delete from auth.users where id::text like 'ae17%'`;
    await sql.end();
  }
});

Deno.test("a role change while the profile is key-share locked and Auth holds the user: no deadlock, no lag", async () => {
  const sql = connect();
  const id = await newUser(sql, "multixact");
  try {
    // T: Auth reads the user for update (GoTrue's read-modify-write).
    const T = session(AUTH_DB_URL);
    let tResolve!: () => void;
    const tGo = new Promise<void>((r) => (tResolve = r));
    let tLocked!: () => void;
    const tHasLock = new Promise<void>((r) => (tLocked = r));
    let tMs = 0;
    const tDone = T.begin(async (tx) => {
      await tx`select id from users where id = ${id} for update`;
      tLocked();
      await tGo;
      const t0 = performance.now();
      await tx`update users set raw_user_meta_data = '{"full_name": "Changed By Auth"}', updated_at = now() where id = ${id}`;
      tMs = performance.now() - t0;
    });
    await tHasLock;
    // S0: an app table's foreign key check: a key-share lock on the profile.
    const s0 = await holdTx(ADMIN_DB_URL, (tx) => tx`select id from public.users where id = ${id} for key share`);
    // The admin: changes the role; the write-back waits for T's lock on auth.users.
    const A = session(ADMIN_DB_URL);
    const [{ pid: aPid }] = await A`select pg_backend_pid() as pid`;
    const aDone = A.begin(async (tx) => {
      await tx`update public.users set role = 'admin' where id = ${id}`;
    }).then(() => "ok", (e) => String(e));
    // Wait until the admin's write-back waits for T.
    for (let i = 0; i < 200; i++) {
      const [w] = await sql`select count(*)::int as n from pg_locks where pid = ${aPid} and not granted`;
      if (w.n > 0) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    tResolve();
    let tErr = "ok";
    await tDone.catch((e) => (tErr = String(e)));
    const aErr = await aDone;
    await s0.release();
    await T.end();
    await A.end();

    assert.equal(tErr, "ok", "Auth's write succeeded");
    assert.equal(aErr, "ok", "the admin's role change succeeded (no deadlock)");
    assert.ok(tMs < 1000, `Auth waited ${Math.round(tMs)} ms, not the 2 s budget`);
    const [p] = await sql`select role, name from public.users where id = ${id}`;
    assert.deepEqual({ ...p }, { role: "admin", name: "Changed By Auth" }, "the profile has both changes at once (no lag)");
    const [au] = await sql`select raw_app_meta_data ->> 'role' as role, raw_user_meta_data ->> 'full_name' as n from auth.users where id = ${id}`;
    assert.deepEqual({ ...au }, { role: "admin", n: "Changed By Auth" }, "and so has Auth");
    assert.equal((await openErrors(sql, id)).length, 0, "the note the trigger left is resolved by the role change's sync");
  } finally {
    await sql`delete from auth.users where id = ${id}`;
    await sql.end();
  }
});

Deno.test("a profile deleted by hand while Auth's write syncs it: the trigger inserts it, in its new state", async () => {
  const sql = connect();
  const id = await newUser(sql, "vanish");
  try {
    // Someone deletes the profile behind the system's back and has not committed yet.
    const deleter = await holdTx(ADMIN_DB_URL, (tx) => tx`delete from public.users where id = ${id}`);
    // Auth soft-deletes the user: its trigger reads the profile (still there), its update
    // waits for the delete, which commits while it waits.
    const auth = session(AUTH_DB_URL);
    const softDelete = auth`update auth.users set deleted_at = now(), raw_user_meta_data = '{}' where id = ${id}`
      .then(() => "ok", (e) => String(e));
    await new Promise((r) => setTimeout(r, 100));
    await deleter.release();
    assert.equal(await softDelete, "ok", "Auth's write succeeded");
    await auth.end();
    const [p] = await sql`select deleted_at is not null as deleted from public.users where id = ${id}`;
    assert.ok(p, "the profile exists again (the trigger inserted it; a reconcile that read the user before could not)");
    assert.equal(p.deleted, true, "and shows the soft delete");
    assert.equal((await openErrors(sql, id)).length, 0, "nothing left to heal");
  } finally {
    await sql`delete from auth.users where id = ${id}`;
    await sql.end();
  }
});
