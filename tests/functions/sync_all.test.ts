// sync-all over real HTTP against the local database: status, reconcile reports,
// dry runs, sources, the skipped concurrent run, a database that dies mid-run, and
// the monitoring log vocabulary.
import assert from "node:assert/strict";
import {
  assertErrorShape,
  testNoSecretsLogged,
  call,
  client,
  integration,
  lockUsersTable,
  logLines,
  serviceHeaders,
  signedInUser,
  testStack,
  userHeaders,
} from "./_helpers.ts";

const t = testStack();

/** A user whose profile has gone missing (deleted behind the trigger's back). */
async function userWithoutProfile(): Promise<string> {
  const stack = await t.stack();
  const { data, error } = await client(stack, "service").auth.admin.createUser({
    email: `missing-${crypto.randomUUID()}@example.test`,
    email_confirm: true,
  });
  if (error) throw error;
  await t.db()`delete from public.users where id = ${data.user.id}`;
  return data.user.id;
}

async function profileExists(id: string): Promise<boolean> {
  const rows = await t.db()`select 1 from public.users where id = ${id}`;
  return rows.length === 1;
}

Deno.test({
  ...integration,
  name: "GET answers user_sync.status() for the secret key and for admins",
  async fn() {
    const stack = await t.stack();
    const missing = await userWithoutProfile();
    const res = await call(stack, "sync-all", { headers: serviceHeaders(stack) });
    assert.equal(res.status, 200);
    for (
      const k of [
        "auth_users",
        "profiles",
        "missing",
        "orphaned",
        "drifted",
        "open_errors",
        "last_run",
      ]
    ) {
      assert.ok(k in res.body, `status has ${k}`);
    }
    assert.ok(res.body.missing >= 1, "the missing profile is counted");
    const [{ n }] = await t.db()<{ n: number }[]>`select count(*)::int as n from auth.users`;
    assert.equal(res.body.auth_users, n);
    const admin = await signedInUser(stack, "admin");
    const viaAdmin = await admin.client.functions.invoke("sync-all", { method: "GET" });
    assert.equal(viaAdmin.error, null);
    assert.ok(viaAdmin.data.missing >= 1);
    // GET never changes anything
    assert.equal(await profileExists(missing), false);
  },
});

Deno.test({
  ...integration,
  name: "POST dry run reports what it would do and changes nothing",
  async fn() {
    const stack = await t.stack();
    const missing = await userWithoutProfile();
    const res = await call(stack, "sync-all", {
      method: "POST",
      headers: serviceHeaders(stack),
      json: { dry_run: true },
    });
    assert.equal(res.status, 200);
    assert.equal(res.body.dry_run, true);
    assert.equal(res.body.skipped, false);
    assert.ok(res.body.inserted >= 1, JSON.stringify(res.body));
    assert.equal(await profileExists(missing), false, "a dry run inserts nothing");
    const [run] = await t
      .db()`select dry_run, source, status from user_sync.runs where id = ${res.body.run_id}`;
    assert.deepEqual({ ...run }, { dry_run: true, source: "api", status: "ok" });
  },
});

Deno.test({
  ...integration,
  name: "POST runs the reconcile: missing profiles inserted, drift repaired, report returned",
  async fn() {
    const stack = await t.stack();
    const missing = await userWithoutProfile();
    const drifted = await signedInUser(stack);
    await t
      .db()`update public.users set email = 'drifted@example.invalid' where id = ${drifted.id}`;
    const { data, error } = await client(stack, "service").functions.invoke("sync-all", {
      body: {},
    });
    assert.equal(error, null);
    for (
      const k of [
        "run_id",
        "source",
        "dry_run",
        "auth_users",
        "profiles",
        "inserted",
        "updated",
        "deleted",
        "unchanged",
        "errors",
        "duration_ms",
      ]
    ) {
      assert.ok(k in data, `report has ${k}`);
    }
    assert.equal(data.source, "api");
    assert.equal(data.dry_run, false);
    assert.ok(data.inserted >= 1 && data.updated >= 1, JSON.stringify(data));
    assert.equal(await profileExists(missing), true);
    const [p] = await t.db()`select email from public.users where id = ${drifted.id}`;
    assert.equal(p.email, drifted.email);
    // the next run has nothing to do
    const again = await call(stack, "sync-all", {
      method: "POST",
      headers: serviceHeaders(stack),
      json: {},
    });
    assert.equal(again.body.inserted + again.body.updated + again.body.deleted, 0);
  },
});

Deno.test({
  ...integration,
  name: "sources: cron only with the secret key, admins recorded as admin",
  async fn() {
    const stack = await t.stack();
    const cron = await call(stack, "sync-all", {
      method: "POST",
      headers: serviceHeaders(stack),
      json: { source: "cron" },
    });
    assert.equal(cron.status, 200);
    assert.equal(cron.body.source, "cron");
    const admin = await signedInUser(stack, "admin");
    const asAdmin = await call(stack, "sync-all", {
      method: "POST",
      headers: userHeaders(stack, admin.accessToken),
    });
    assert.equal(asAdmin.status, 200, "an empty body is a plain run");
    assert.equal(asAdmin.body.source, "admin");
    const [run] = await t.db()`select source from user_sync.runs where id = ${asAdmin.body.run_id}`;
    assert.equal(run.source, "admin");
    const forged = await call(stack, "sync-all", {
      method: "POST",
      headers: userHeaders(stack, admin.accessToken),
      json: { source: "cron" },
    });
    assert.equal(forged.status, 403);
    assertErrorShape(forged.body, 403, "forbidden");
    const other = await call(stack, "sync-all", {
      method: "POST",
      headers: serviceHeaders(stack),
      json: { source: "manual" },
    });
    assert.equal(other.status, 400);
  },
});

Deno.test({
  ...integration,
  name: "a run while another holds the reconcile lock is skipped at once (200, skipped: true)",
  async fn() {
    const stack = await t.stack();
    const conn = await t.db().reserve();
    try {
      await conn`select pg_advisory_lock(hashtextextended('user_sync.reconcile', 0))`;
      const res = await call(stack, "sync-all", {
        method: "POST",
        headers: serviceHeaders(stack),
        json: {},
      });
      assert.equal(res.status, 200);
      assert.equal(res.body.skipped, true, JSON.stringify(res.body));
      assert.ok(res.ms < 3000, `answered at once (${Math.round(res.ms)} ms)`);
      const [run] = await t.db()`select status from user_sync.runs where id = ${res.body.run_id}`;
      assert.equal(run.status, "skipped");
      assert.ok(logLines("sync-all", "sync skipped").some((l) => l.run_id === res.body.run_id));
    } finally {
      await conn`select pg_advisory_unlock(hashtextextended('user_sync.reconcile', 0))`;
      conn.release();
    }
    const after = await call(stack, "sync-all", {
      method: "POST",
      headers: serviceHeaders(stack),
      json: {},
    });
    assert.equal(after.body.skipped, false, "the lock is free again");
  },
});

Deno.test({
  ...integration,
  name: "the database dying mid-run answers 503 JSON and logs sync failed",
  async fn() {
    const stack = await t.stack();
    const release = await lockUsersTable(t.db());
    let pending: ReturnType<typeof call> | undefined;
    try {
      pending = call(stack, "sync-all", {
        method: "POST",
        headers: serviceHeaders(stack),
        json: {},
      });
      // wait until the reconcile is blocked inside the database, then kill its backend
      let pid: number | undefined;
      for (let i = 0; i < 100 && !pid; i++) {
        const rows = await t.db()<{ pid: number }[]>`
          select pid from pg_stat_activity
          where application_name = 'user-sync:sync-all' and wait_event_type = 'Lock'`;
        pid = rows[0]?.pid;
        if (!pid) await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(pid, "the reconcile reached the database");
      await t.db()`select pg_terminate_backend(${pid})`;
      const res = await pending;
      assert.equal(res.status, 503);
      assertErrorShape(res.body, 503, "database_unavailable");
      assert.ok(logLines("sync-all", "sync failed").length >= 1);
    } finally {
      await release();
      await pending?.catch(() => {});
    }
    // the function recovers with a fresh connection
    const next = await call(stack, "sync-all", { headers: serviceHeaders(stack) });
    assert.equal(next.status, 200);
  },
});

Deno.test({
  ...integration,
  name: "log lines keep the monitoring vocabulary as structured JSON",
  async fn() {
    const stack = await t.stack();
    await userWithoutProfile();
    const res = await call(stack, "sync-all", {
      method: "POST",
      headers: serviceHeaders(stack),
      json: {},
    });
    assert.equal(res.status, 200);
    const started = logLines("sync-all", "sync started");
    assert.ok(started.some((l) => l.source === "api" && l.dry_run === false && l.level === "info"));
    const done = logLines("sync-all", "sync completed").find((l) => l.run_id === res.body.run_id);
    assert.ok(done, "a sync completed line for this run");
    const synced = res.body.inserted + res.body.updated + res.body.deleted;
    assert.equal(done.message, `sync completed with ${synced} users synced`);
    for (
      const k of [
        "inserted",
        "updated",
        "deleted",
        "unchanged",
        "errors",
        "auth_users",
        "profiles",
        "duration_ms",
      ]
    ) {
      assert.equal(typeof done[k], "number", `${k} in the log line`);
    }
  },
});

Deno.test({
  ...integration,
  name: "a run where some users cannot be synced answers 200 with errors, logs it, records them",
  async fn() {
    const stack = await t.stack();
    const email = `unsyncable-${crypto.randomUUID()}@example.test`;
    // a profile table that refuses this one user (added NOT VALID: existing rows stay)
    await t.db().unsafe(
      `alter table public.users add constraint user_sync_test_refuse check (email is distinct from '${email}') not valid`,
    );
    try {
      const { data, error } = await client(stack, "service").auth.admin.createUser({
        email,
        email_confirm: true,
      });
      assert.equal(error, null, "the trigger never blocks the sign-up");
      const id = data.user!.id;
      const res = await call(stack, "sync-all", {
        method: "POST",
        headers: serviceHeaders(stack),
        json: {},
      });
      assert.equal(res.status, 200);
      assert.equal(res.body.status, "errors");
      assert.ok(res.body.errors >= 1, JSON.stringify(res.body));
      const line = logLines("sync-all", "sync completed with errors").find((l) =>
        l.run_id === res.body.run_id
      );
      assert.ok(line, "a 'sync completed with errors' line for this run");
      assert.equal(line.level, "warn");
      const recorded = await t.db()`
        select 1 from user_sync.errors where user_id = ${id} and source = 'reconcile' and run_id = ${res.body.run_id}`;
      assert.equal(recorded.length, 1);
    } finally {
      await t.db().unsafe(
        `alter table public.users drop constraint if exists user_sync_test_refuse`,
      );
    }
    // healed by the next run
    const next = await call(stack, "sync-all", {
      method: "POST",
      headers: serviceHeaders(stack),
      json: {},
    });
    assert.equal(next.body.status, "ok");
    assert.ok(next.body.inserted >= 1);
  },
});

testNoSecretsLogged(t, "sync-all");
