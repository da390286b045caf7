// sync-all GET ?include=runs,errors: the admin dashboard's lists of recent runs and
// open errors, for the same callers as status() and nobody else.
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
  },
});

testNoSecretsLogged(t, "sync-all");
