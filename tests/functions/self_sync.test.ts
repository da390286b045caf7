// sync-all POST {"user_id"}: self-sync. A signed-in user heals only their own profile,
// admins and the secret key anyone's; ids in any form Postgres accepts.
import assert from "node:assert/strict";
import {
  assertErrorShape,
  call,
  dropProfile,
  integration,
  profileExists,
  serviceHeaders,
  signedInUser,
  testNoSecretsLogged,
  testStack,
  userHeaders,
} from "./_helpers.ts";

const t = testStack();

Deno.test({
  ...integration,
  name: "a signed-in user whose profile is missing gets it back, and the answer is the profile",
  async fn() {
    const stack = await t.stack();
    const user = await signedInUser(stack);
    await dropProfile(t.db(), user.id);
    const res = await call(stack, "sync-all", {
      method: "POST",
      headers: userHeaders(stack, user.accessToken),
      json: { user_id: user.id },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.user.id, user.id);
    assert.equal(res.body.user.email, user.email);
    assert.equal(res.body.user.role, "user");
    assert.ok(await profileExists(t.db(), user.id));
  },
});

Deno.test({
  ...integration,
  name: "a user may not sync someone else (403), and nothing happens to that profile",
  async fn() {
    const stack = await t.stack();
    const [mallory, victim] = await Promise.all([signedInUser(stack), signedInUser(stack)]);
    await dropProfile(t.db(), victim.id);
    const res = await call(stack, "sync-all", {
      method: "POST",
      headers: userHeaders(stack, mallory.accessToken),
      json: { user_id: victim.id.toUpperCase() },
    });
    assert.equal(res.status, 403);
    assertErrorShape(res.body, 403, "forbidden");
    assert.equal(await profileExists(t.db(), victim.id), false);
  },
});

Deno.test({
  ...integration,
  name: "admins and the secret key sync anyone",
  async fn() {
    const stack = await t.stack();
    const [admin, a, b] = await Promise.all([
      signedInUser(stack, "admin"),
      signedInUser(stack),
      signedInUser(stack),
    ]);
    await dropProfile(t.db(), a.id);
    await dropProfile(t.db(), b.id);
    const byAdmin = await call(stack, "sync-all", {
      method: "POST",
      headers: userHeaders(stack, admin.accessToken),
      json: { user_id: a.id },
    });
    assert.equal(byAdmin.status, 200);
    assert.equal(byAdmin.body.user.id, a.id);
    const byKey = await call(stack, "sync-all", {
      method: "POST",
      headers: serviceHeaders(stack),
      json: { user_id: b.id },
    });
    assert.equal(byKey.status, 200);
    assert.equal(byKey.body.user.id, b.id);
  },
});

Deno.test({
  ...integration,
  name: "ids that are not RFC 4122 and other spellings Postgres accepts are synced",
  async fn() {
    const stack = await t.stack();
    // An imported user with a nil-like id (version and variant bits all zero).
    const id = "00000000-0000-0000-0000-0000000000ab";
    await t.db()`delete from auth.users where id = ${id}`;
    await t.db()`insert into auth.users (id, email, raw_app_meta_data, raw_user_meta_data)
      values (${id}, ${`imported-${crypto.randomUUID()}@example.test`},
              '{"provider":"email","providers":["email"]}', '{"full_name":"Imported"}')`;
    await dropProfile(t.db(), id);
    const res = await call(stack, "sync-all", {
      method: "POST",
      headers: serviceHeaders(stack),
      json: { user_id: "{00000000-00000000-00000000-000000AB}" },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.user.id, id);
    assert.equal(res.body.user.name, "Imported");
    await t.db()`delete from auth.users where id = ${id}`;
  },
});

Deno.test({
  ...integration,
  name: "self-sync refuses anon (401), a malformed id (400) and answers 404 for an unknown user",
  async fn() {
    const stack = await t.stack();
    const user = await signedInUser(stack);
    const anon = await call(stack, "sync-all", {
      method: "POST",
      headers: { apikey: stack.anonKey, authorization: `Bearer ${stack.anonKey}` },
      json: { user_id: user.id },
    });
    assert.equal(anon.status, 401);
    assertErrorShape(anon.body, 401, "unauthorized");
    for (const bad of ["not-a-uuid", `${user.id}0`, "{" + user.id, 42, null]) {
      const res = await call(stack, "sync-all", {
        method: "POST",
        headers: userHeaders(stack, user.accessToken),
        json: { user_id: bad },
      });
      assert.equal(res.status, 400, `user_id ${JSON.stringify(bad)}`);
      assertErrorShape(res.body, 400, "invalid_input");
    }
    const extra = await call(stack, "sync-all", {
      method: "POST",
      headers: userHeaders(stack, user.accessToken),
      json: { user_id: user.id, dry_run: true },
    });
    assert.equal(extra.status, 400, "user_id does not mix with the reconcile's fields");
    const unknown = await call(stack, "sync-all", {
      method: "POST",
      headers: serviceHeaders(stack),
      json: { user_id: crypto.randomUUID() },
    });
    assert.equal(unknown.status, 404);
    assertErrorShape(unknown.body, 404, "not_found");
  },
});

Deno.test({
  ...integration,
  name: "a plain user still may not run the reconcile",
  async fn() {
    const stack = await t.stack();
    const user = await signedInUser(stack);
    const res = await call(stack, "sync-all", {
      method: "POST",
      headers: userHeaders(stack, user.accessToken),
      json: { dry_run: true },
    });
    assert.equal(res.status, 403);
  },
});

testNoSecretsLogged(t, "sync-all");
