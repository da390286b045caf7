// sync-all GET ?include=runs,errors,heal,health: the admin dashboard's lists of recent
// runs and open errors, and status()'s parts that cost no pass over the users (the heal's
// progress, health), for the same callers as status() and nobody else.
import assert from "node:assert/strict";
import {
  assertErrorShape,
  call,
  integration,
  serviceHeaders,
  signedInUser,
  testNoSecretsLogged,
  testStack,
  userHeaders,
} from "./_helpers.ts";

const t = testStack();

Deno.test({
  ...integration,
  name: "GET ?include=runs,errors adds the newest runs and the open errors to status()",
  async fn() {
    const stack = await t.stack();
    const user = await signedInUser(stack);
    const dry = await call(stack, "sync-all", {
      method: "POST",
      headers: serviceHeaders(stack),
      json: { dry_run: true },
    });
    assert.equal(dry.status, 200);
    await t.db()`select user_sync.record_error(${user.id}::uuid, 'trigger', 'XX000', 'boom for the dashboard')`;

    const res = await call(stack, "sync-all?include=runs,errors", { headers: serviceHeaders(stack) });
    assert.equal(res.status, 200);
    assert.ok("auth_users" in res.body && "health" in res.body, "status() is still there");
    assert.equal(res.body.runs[0].run_id, dry.body.run_id, "newest run first");
    assert.equal(res.body.runs[0].dry_run, true);
    for (const k of ["source", "status", "started_at", "duration_ms", "inserted", "updated", "deleted"]) {
      assert.ok(k in res.body.runs[0], `a run has ${k}`);
    }
    const mine = res.body.errors.find((e: { user_id: string }) => e.user_id === user.id);
    assert.ok(mine, "the open error is listed");
    assert.equal(mine.email, user.email);
    assert.equal(mine.source, "trigger");
    assert.equal(mine.message, "boom for the dashboard");
    assert.equal(res.body.errors.length <= 50 && res.body.runs.length <= 50, true);

    // Resolved errors leave the list: a successful sync of that user resolves it.
    await t.db()`select user_sync.sync_user(${user.id}::uuid)`;
    const after = await call(stack, "sync-all?include=errors", { headers: serviceHeaders(stack) });
    assert.equal(after.body.errors.some((e: { user_id: string }) => e.user_id === user.id), false);
    assert.equal("runs" in after.body, false, "only the lists asked for");

    const plain = await call(stack, "sync-all", { headers: serviceHeaders(stack) });
    assert.equal("runs" in plain.body || "errors" in plain.body, false, "a plain GET is status() alone");

    const listsOnly = await call(stack, "sync-all?include=runs,errors&status=false", {
      headers: serviceHeaders(stack),
    });
    assert.equal(listsOnly.status, 200);
    assert.deepEqual(Object.keys(listsOnly.body).sort(), ["errors", "runs"], "lists without status()");
  },
});

Deno.test({
  ...integration,
  name: "GET ?include=heal,health&status=false: an unfinished heal's progress and the health, without status()'s counts",
  async fn() {
    const stack = await t.stack();
    await signedInUser(stack);
    await signedInUser(stack);
    // a pass left unfinished after one batch of one user
    await t.db().begin(async (tx) => {
      await tx`set local user_sync.reconcile_batch_rows = 1`;
      await tx`select user_sync.reconcile(false, 'test', 0)`;
    });
    try {
      const cheap = await call(stack, "sync-all?include=heal,health&status=false", {
        headers: serviceHeaders(stack),
      });
      assert.equal(cheap.status, 200);
      assert.deepEqual(Object.keys(cheap.body).sort(), ["heal", "health"], "no counts, no lists");
      assert.equal(cheap.body.heal.examined, 1, "the pass examined one user");
      assert.ok(cheap.body.heal.total >= 2, `of ${cheap.body.heal.total}`);
      for (const k of ["rate", "eta_seconds", "started_at"]) assert.ok(k in cheap.body.heal, `heal has ${k}`);
      assert.equal(typeof cheap.body.health.ok, "boolean");
      assert.ok(Array.isArray(cheap.body.health.problems));

      const full = await call(stack, "sync-all?include=heal,health", { headers: serviceHeaders(stack) });
      assert.ok("auth_users" in full.body, "with status(), its counts");
      assert.equal(full.body.heal.examined, cheap.body.heal.examined, "the same progress as status().heal");
      assert.equal(full.body.heal.started_at, cheap.body.heal.started_at);
      assert.deepEqual(full.body.health, cheap.body.health, "the same health as status()");
    } finally {
      await t.db()`select user_sync.reconcile(false, 'test')`;
    }
    const done = await call(stack, "sync-all?include=heal&status=false", { headers: serviceHeaders(stack) });
    assert.deepEqual(done.body, { heal: null }, "no unfinished pass: heal is null");
  },
});

Deno.test({
  ...integration,
  name: "GET ?include= answers admins, refuses users, and rejects unknown lists and flags",
  async fn() {
    const stack = await t.stack();
    const admin = await signedInUser(stack, "admin");
    const viaAdmin = await call(stack, "sync-all?include=runs", {
      headers: userHeaders(stack, admin.accessToken),
    });
    assert.equal(viaAdmin.status, 200);
    assert.ok(Array.isArray(viaAdmin.body.runs));

    const user = await signedInUser(stack);
    const viaUser = await call(stack, "sync-all?include=runs,errors", {
      headers: userHeaders(stack, user.accessToken),
    });
    assertErrorShape(viaUser.body, viaUser.status, "forbidden");
    assert.equal(viaUser.status, 403);

    for (const query of ["include=runs,secrets", "status=false", "include=runs&status=maybe"]) {
      const bad = await call(stack, `sync-all?${query}`, { headers: serviceHeaders(stack) });
      assertErrorShape(bad.body, bad.status, "invalid_input");
      assert.equal(bad.status, 400, query);
    }
    const listsAsUser = await call(stack, "sync-all?include=runs&status=false", {
      headers: userHeaders(stack, user.accessToken),
    });
    assert.equal(listsAsUser.status, 403, "the lists alone are for admins too");
    const healAsUser = await call(stack, "sync-all?include=heal,health&status=false", {
      headers: userHeaders(stack, user.accessToken),
    });
    assert.equal(healAsUser.status, 403, "the heal's progress and the health are for admins too");
    const healAsAdmin = await call(stack, "sync-all?include=heal,health&status=false", {
      headers: userHeaders(stack, admin.accessToken),
    });
    assert.equal(healAsAdmin.status, 200);
  },
});

testNoSecretsLogged(t, "sync-all");
