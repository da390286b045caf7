// Faults, injected for real:
//
//  1. The database crashes (pg_ctl -m immediate: every connection cut, no checkpoint)
//     in the middle of a sync-all that has already written tens of thousands of
//     profiles in its transaction. The caller gets 503 JSON, the run is not recorded
//     (let alone as a success), nothing half-done survives crash recovery, and the
//     next sync-all heals everything.
//  2. Supabase Auth's API is down in every way we could think of while create-user
//     runs: refused connections, a black hole that accepts and never answers, proxy
//     error pages, 500s, garbage with a 200, and an Auth that creates the user but
//     whose answer is lost. Each time: 503 JSON (or the user, when Auth did answer),
//     and never an auth user without a recorded outcome (a profile, or an open
//     user_sync.errors row).
//
// (The profile table broken during 10,000 sign-ups is tests/sql/broken-profile-table;
// missing Vault secrets for the cron job are in tests/e2e.)
//
// The crash needs the test cluster's data directory: scripts/test.sh exports
// USER_SYNC_PGDATA; the test checks it is the directory of the server it talks to.
import assert from "node:assert/strict";
import { realpathSync } from "node:fs";
import type { LocalStack } from "../../platform/gateway.ts";
import {
  assertErrorShape,
  testNoSecretsLogged,
  call,
  closedPort,
  integration,
  serviceHeaders,
  testStack,
} from "../functions/_helpers.ts";
import {
  adminDb,
  assertNoInternals,
  envInt,
  figures,
  sleep,
  type Sql,
  syncStatus,
  waitFor,
} from "./_shared.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const PGDATA = Deno.env.get("USER_SYNC_PGDATA");
const CRASH_USERS = envInt("USER_SYNC_FAULT_CRASH_USERS", 50_000);
/** ids of this file's users: c4a5xxxx-... */
const CRASH_PREFIX = "c4a50000-0000-4000-8000-";
const DRIFT_PREFIX = "c4a50001-0000-4000-8000-";
const ORPHAN_ID = "c4a50002-0000-4000-8000-000000000001";

// ---------------------------------------------------------------------------
// Auth faults: the functions reach Auth through this fetch; `authFault` picks the
// failure of the next admin API call.
// ---------------------------------------------------------------------------
type AuthFault =
  | "none"
  | "refused"
  | "black hole"
  | "502 page"
  | "503 page"
  | "500 json"
  | "200 garbage"
  | "lost answer"
  | "504 after commit"
  | "slow (2 s)";
let authFault: AuthFault = "none";
let blackHoleUrl = "";
const deadUrl = `http://127.0.0.1:${closedPort()}`;

const faultyFetch: typeof fetch = async (input, init) => {
  const url = input instanceof Request ? input.url : String(input);
  const admin = /\/auth\/v1\/admin\/users/.test(url);
  if (!admin || authFault === "none") return await fetch(input, init);
  const origin = new URL(url).origin;
  switch (authFault) {
    case "refused":
      return await fetch(url.replace(origin, deadUrl), init);
    case "black hole":
      return await fetch(url.replace(origin, blackHoleUrl), init);
    case "502 page":
      return new Response("<html><body><h1>502 Bad Gateway</h1></body></html>", {
        status: 502,
        headers: { "content-type": "text/html" },
      });
    case "503 page":
      return new Response("upstream connect error or disconnect/reset before headers", {
        status: 503,
        headers: { "content-type": "text/plain" },
      });
    case "500 json":
      return Response.json({ code: "unexpected_failure", message: "Unexpected failure" }, {
        status: 500,
      });
    case "200 garbage":
      return new Response("<!doctype html><title>captive portal</title>", {
        status: 200,
        headers: { "content-type": "text/html" },
      });
    case "lost answer": {
      // Auth does the work and commits, then the connection dies before the answer.
      const res = await fetch(input, init);
      await res.body?.cancel();
      throw new TypeError("error sending request: connection reset by peer");
    }
    case "504 after commit": {
      const res = await fetch(input, init);
      await res.body?.cancel();
      return new Response("upstream request timeout", { status: 504 });
    }
    case "slow (2 s)":
      await sleep(2000);
      return await fetch(input, init);
  }
};

/** A TCP server that accepts connections and never answers (a hung Auth). */
function startBlackHole(): { url: string; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  (async () => {
    try {
      for await (const conn of listener) conns.push(conn);
    } catch {
      // closed
    }
  })();
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    close() {
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
      listener.close();
    },
  };
}

const t = testStack({ functionFetch: faultyFetch });

// ---------------------------------------------------------------------------
// 1. The database crashes in the middle of a sync-all
// ---------------------------------------------------------------------------
async function dbScript(...args: string[]): Promise<void> {
  const out = await new Deno.Command("bash", {
    args: [`${ROOT}scripts/db.sh`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`db.sh ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** True when the server answers (a fresh connection each time). */
async function serverUp(): Promise<boolean> {
  const probe = adminDb(1);
  try {
    await probe`select 1`;
    return true;
  } catch {
    return false;
  } finally {
    await probe.end({ timeout: 1 }).catch(() => {});
  }
}

Deno.test({
  ...integration,
  name:
    `the database crashes in the middle of a sync-all (${CRASH_USERS} users to heal): 503 JSON, the committed calls' work kept, the crashed call's gone, the next sync-all continues the same pass and heals everything`,
  ignore: !PGDATA,
  async fn() {
    const stack = await t.stack();
    let sql: Sql = adminDb(2);
    let locker: Deno.ChildProcess | undefined;
    let pending: ReturnType<typeof call> | undefined;
    let lastRun = 0;
    try {
      const [{ data_directory }] =
        await sql`select current_setting('data_directory') as data_directory`;
      assert.equal(
        realpathSync(data_directory),
        realpathSync(PGDATA!),
        "USER_SYNC_PGDATA is the data directory of the server under test",
      );
      // 3 users with profiles (their profiles drift below, behind the system's back),
      // then a clean table, so that every difference below is ours.
      await sql.unsafe(`
        insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data,
                                raw_user_meta_data, created_at, updated_at, is_anonymous)
        select '00000000-0000-0000-0000-000000000000',
               ('${DRIFT_PREFIX}' || lpad(to_hex(g), 12, '0'))::uuid,
               'authenticated', 'authenticated', 'drift.' || g || '@example.test',
               '{"provider": "email", "providers": ["email"]}', '{}', now(), now(), false
        from generate_series(1, 3) g`);
      await sql`select user_sync.reconcile(false, 'test')`;
      lastRun = Number((await sql`select coalesce(max(id), 0) as id from user_sync.runs`)[0].id);

      // Seed: CRASH_USERS auth users without profiles (as a bulk import with triggers
      // off would leave them), 3 users whose profiles drifted, 1 orphaned profile.
      const started = performance.now();
      await sql.unsafe(`
        set session_replication_role = replica;
        insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data,
                                raw_user_meta_data, created_at, updated_at, is_anonymous)
        select '00000000-0000-0000-0000-000000000000',
               ('${CRASH_PREFIX}' || lpad(to_hex(g), 12, '0'))::uuid,
               'authenticated', 'authenticated', 'crash.' || g || '@example.test',
               '{"provider": "email", "providers": ["email"]}',
               jsonb_build_object('full_name', 'Crash ' || g), now(), now(), false
        from generate_series(1, ${CRASH_USERS}) g;
        insert into public.users (id, email) values ('${ORPHAN_ID}', 'orphan@example.test');
        reset session_replication_role;
        update public.users set email = 'tampered@example.test', provider = 'tampered'
        where id::text like '${DRIFT_PREFIX}%';
        analyze auth.users;
        analyze public.users;`);
      const seedMs = Math.round(performance.now() - started);
      const before = await syncStatus(sql);
      assert.equal(before.missing, CRASH_USERS);
      assert.equal(before.drifted, 3);
      assert.equal(before.orphaned, 1);

      // A writer holds the row lock of one drifted profile: the reconcile walks auth.users
      // (inserting every missing profile), then waits on that row when its walk of
      // public.users reaches the tampered profile — mid-run, with profiles written and
      // not committed. (psql, so the client that dies with the server is a separate
      // process.)
      const driftedId = `${DRIFT_PREFIX}000000000001`;
      locker = new Deno.Command("psql", {
        args: [
          "-X",
          "-q",
          "-h",
          "127.0.0.1",
          "-p",
          new URL(stack.dbUrl).port,
          "-U",
          "supabase_admin",
          "-d",
          "postgres",
          "-c",
          `begin; select 1 from public.users where id = '${driftedId}' for update; select pg_sleep(600);`,
        ],
        env: { PGPASSWORD: "postgres", PGAPPNAME: "user-sync-crash-locker" },
        stdout: "null",
        stderr: "null",
      }).spawn();
      await waitFor("the locker to hold the row", 10_000, async () => {
        const rows = await sql`
          select 1 from pg_stat_activity
          where application_name = 'user-sync-crash-locker' and query like '%pg_sleep%' and state = 'active'`;
        return rows.length ? true : undefined;
      });
      const sizeBefore = Number(
        (await sql`select pg_relation_size('public.users') as n`)[0].n,
      );

      pending = call(stack, "sync-all", {
        method: "POST",
        headers: serviceHeaders(stack),
        json: {},
      });
      const blocked = await waitFor("the reconcile to be blocked mid-run", 60_000, async () => {
        const [row] = await sql`
          select a.pid, a.backend_xid::text as xid, a.wait_event_type
          from pg_stat_activity a
          where a.application_name = 'user-sync:sync-all' and a.wait_event_type = 'Lock'
            and a.query like '%user_sync.reconcile%'`;
        return row;
      }, 100);
      assert.ok(blocked.xid, "the reconcile has written (it holds a transaction id)");
      const sizeDuring = Number((await sql`select pg_relation_size('public.users') as n`)[0].n);
      assert.ok(sizeDuring > sizeBefore, "the reconcile's uncommitted profiles are on disk");
      await sql.end({ timeout: 1 });

      // Crash.
      const crashAt = performance.now();
      await dbScript("crash");
      const res = await pending;
      pending = undefined;
      assert.equal(res.status, 503, JSON.stringify(res.body));
      assertErrorShape(res.body, 503, "database_unavailable");
      assertNoInternals(JSON.stringify(res.body), "the 503 answer");
      await locker.status;
      locker = undefined;

      // While it is down: every endpoint that needs the database answers 503 JSON.
      const down = await call(stack, "sync-all", { headers: serviceHeaders(stack) });
      assert.equal(down.status, 503);
      assertErrorShape(down.body, 503, "database_unavailable");

      // Restart (crash recovery).
      await dbScript("start");
      const recoveredMs = Math.round(performance.now() - crashAt);
      sql = adminDb(2);

      // The calls that committed before the crash are kept (each its own transaction),
      // the crashed call left nothing: no run row, no profile, no progress.
      const runs = await sql`select id, status, complete, inserted::int as inserted from user_sync.runs where id > ${lastRun} order by id`;
      assert.ok(runs.every((r) => r.status === "ok" && r.complete === false), JSON.stringify(runs));
      const keptInserts = runs.reduce((n, r) => n + r.inserted, 0);
      const [{ healedCrashUsers }] = await sql`
        select count(*)::int as "healedCrashUsers" from public.users where id::text like ${CRASH_PREFIX + "%"}`;
      assert.equal(healedCrashUsers, keptInserts, "exactly the committed calls' profiles survived recovery");
      const after = await syncStatus(sql);
      assert.equal(after.missing, CRASH_USERS - keptInserts, "no half-written profile survived recovery");
      assert.equal(after.drifted, 3);
      assert.equal(after.orphaned, 1);
      const [progress] = await sql`select run_id, examined::int as examined from user_sync.reconcile_progress where not dry_run and finished_at is null`;
      if (runs.length > 0) {
        assert.equal(Number(progress.run_id), Number(runs[0].id), "the pass started before the crash is still the one in progress");
      }

      // The next sync-all heals everything (the same function instance, new connections).
      const heal = await call(stack, "sync-all", {
        method: "POST",
        headers: serviceHeaders(stack),
        json: {},
      });
      assert.equal(heal.status, 200, JSON.stringify(heal.body));
      assert.equal(heal.body.status, "ok");
      assert.equal(heal.body.complete, true);
      assert.equal(heal.body.inserted, CRASH_USERS - keptInserts, "the next sync-all continues: nothing twice");
      if (runs.length > 0) {
        const [{ passStart }] = await sql`select run_id as "passStart" from user_sync.reconcile_progress where not dry_run`;
        assert.equal(Number(passStart), Number(runs[0].id), "it finished the pass begun before the crash");
      }
      assert.equal(heal.body.updated, 3);
      assert.equal(heal.body.deleted, 1);
      const healed = await syncStatus(sql);
      assert.deepEqual(
        [healed.missing, healed.drifted, healed.orphaned],
        [0, 0, 0],
        JSON.stringify(healed),
      );
      const [{ named }] = await sql`
        select count(*)::int as named from public.users
        where id::text like ${
        CRASH_PREFIX + "%"
      } and name = 'Crash ' || ('x' || right(id::text, 8))::bit(32)::int`;
      assert.equal(named, CRASH_USERS, "every healed profile carries its metadata");
      const [{ restored }] = await sql`
        select count(*)::int as restored from public.users
        where id::text like ${DRIFT_PREFIX + "%"} and email like 'drift.%' and provider = 'email'`;
      assert.equal(restored, 3);
      const okRuns = await sql`select status from user_sync.runs where id > ${lastRun}`;
      assert.ok(okRuns.every((r) => r.status === "ok"), "only good calls are recorded");

      figures("fault: database crash mid sync-all", {
        users_to_heal: CRASH_USERS,
        seed_ms: seedMs,
        crash_to_recovered_ms: recoveredMs,
        answer: `${res.status} ${res.body.error.code}`,
        calls_committed_before_crash: runs.length,
        profiles_kept_from_committed_calls: keptInserts,
        healed: {
          inserted: heal.body.inserted,
          updated: heal.body.updated,
          deleted: heal.body.deleted,
        },
        heal_ms: heal.body.duration_ms,
        rows_checked: healed.auth_users + healed.profiles,
        lost: 0,
      });
    } finally {
      try {
        locker?.kill("SIGKILL");
      } catch {
        // already gone
      }
      await pending?.catch(() => {});
      // Other suites share this cluster: it must be up again whatever happened.
      if (!(await serverUp())) await dbScript("start");
      await sql.end({ timeout: 1 }).catch(() => {});
      const clean = adminDb(1);
      try {
        await clean`delete from auth.users where id::text like ${
          CRASH_PREFIX + "%"
        } or id::text like ${DRIFT_PREFIX + "%"}`;
        await clean`delete from public.users where id = ${ORPHAN_ID}`;
        await clean`delete from user_sync.errors where user_id::text like 'c4a5000%'`;
        await clean`delete from user_sync.runs where id > ${lastRun}`;
      } finally {
        await clean.end();
      }
    }
  },
});

// ---------------------------------------------------------------------------
// 2. Supabase Auth is down during create-user
// ---------------------------------------------------------------------------
const DOWN: { fault: AuthFault; authCommits: boolean }[] = [
  { fault: "refused", authCommits: false },
  { fault: "black hole", authCommits: false },
  { fault: "502 page", authCommits: false },
  { fault: "503 page", authCommits: false },
  { fault: "500 json", authCommits: false },
  { fault: "200 garbage", authCommits: false },
  { fault: "lost answer", authCommits: true },
  { fault: "504 after commit", authCommits: true },
];

async function outcome(sql: Sql, email: string) {
  const [row] = await sql`
    select au.id, p.id is not null as has_profile, p.email as profile_email,
           exists (select 1 from user_sync.errors e where e.user_id = au.id and e.resolved_at is null) as open_error
    from auth.users au left join public.users p on p.id = au.id
    where au.email = ${email}`;
  return row;
}

function createUser(stack: LocalStack, email: string) {
  return call(stack, "create-user", {
    method: "POST",
    headers: serviceHeaders(stack),
    json: { email, name: "Fault Case", email_confirm: true },
  });
}

Deno.test({
  ...integration,
  name:
    "Supabase Auth down during create-user (refused, black hole, error pages, garbage, lost answers): 503 JSON, never an auth user without a recorded outcome",
  async fn() {
    const stack = await t.stack();
    const sql = t.db();
    const hole = startBlackHole();
    blackHoleUrl = hole.url;
    const tag = crypto.randomUUID().slice(0, 8);
    const results: Record<string, unknown>[] = [];
    try {
      for (const { fault, authCommits } of DOWN) {
        const email = `auth-down-${tag}-${fault.replace(/\W+/g, "-")}@example.test`;
        authFault = fault;
        const t0 = performance.now();
        const res = await createUser(stack, email);
        const ms = Math.round(performance.now() - t0);
        authFault = "none";
        assert.equal(res.status, 503, `${fault}: ${JSON.stringify(res.body)}`);
        assertErrorShape(res.body, 503, "auth_unavailable");
        assertNoInternals(JSON.stringify(res.body), fault);
        assert.ok(ms < 15_000, `${fault}: answered within the Auth budget (${ms} ms)`);

        const o = await outcome(sql, email);
        if (authCommits) {
          assert.ok(o, `${fault}: Auth created the user`);
          assert.ok(
            o.has_profile || o.open_error,
            `${fault}: the auth user has a recorded outcome`,
          );
          assert.equal(o.profile_email, email, `${fault}: and its profile is in sync`);
        } else {
          assert.equal(o, undefined, `${fault}: no auth user was created`);
        }
        // Auth is back: a retry tells the caller where things stand.
        const retry = await createUser(stack, email);
        if (authCommits) {
          assert.equal(retry.status, 409, `${fault} retry: ${JSON.stringify(retry.body)}`);
          assertErrorShape(retry.body, 409, "conflict");
        } else {
          assert.equal(retry.status, 201, `${fault} retry: ${JSON.stringify(retry.body)}`);
          assert.equal(retry.body.user.email, email);
        }
        results.push({
          fault,
          status: res.status,
          ms,
          auth_user_created: authCommits,
          retry: retry.status,
        });
      }

      // A slow Auth (2 s) is not a failure.
      authFault = "slow (2 s)";
      const slowEmail = `auth-slow-${tag}@example.test`;
      const slow = await createUser(stack, slowEmail);
      authFault = "none";
      assert.equal(slow.status, 201, JSON.stringify(slow.body));
      assert.equal(slow.body.user.email, slowEmail);

      // The invariant, over the whole table: no auth user without a profile or an
      // open error explaining why not.
      const [{ unexplained }] = await sql`
        select count(*)::int as unexplained from auth.users au
        where not exists (select 1 from public.users p where p.id = au.id)
          and not exists (select 1 from user_sync.errors e where e.user_id = au.id and e.resolved_at is null)`;
      assert.equal(unexplained, 0);
      const s = await syncStatus(sql);
      assert.deepEqual([s.missing, s.drifted, s.orphaned], [0, 0, 0], JSON.stringify(s));
      figures("fault: Supabase Auth down during create-user", {
        faults_injected: DOWN.length,
        survived: results.length,
        cases: results,
        slow_auth_ms: Math.round(slow.ms),
        auth_users_without_outcome: unexplained,
      });
    } finally {
      authFault = "none";
      hole.close();
      await sql`delete from auth.users where email like ${`auth-%-${tag}%`}`;
    }
  },
});

testNoSecretsLogged(t, "fault-injection");
