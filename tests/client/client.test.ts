// @user-sync/client through the real supabase-js against the local stack (gateway with
// the Auth and Data API stand-ins, our functions, the real database with its RLS).
import assert from "node:assert/strict";
import { createClient } from "@supabase/supabase-js";
import {
  createUserSyncClient,
  type Profile,
  UserSyncError,
} from "../../client/src/index.ts";
import {
  client,
  integration,
  signedInUser,
  testNoSecretsLogged,
  testStack,
  type TestUser,
} from "../functions/_helpers.ts";

const t = testStack();

async function rejects(p: Promise<unknown>, status: number, code: string): Promise<UserSyncError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof UserSyncError, `a UserSyncError, got ${err}`);
    assert.equal(err.status, status, `status of ${JSON.stringify(err.body)}`);
    assert.equal(err.code, code);
    assert.equal(err.body.error.code, code);
    assert.equal(typeof err.body.error.message, "string");
    return err;
  }
  assert.fail(`expected a ${status} ${code}`);
}

/** Users whose email and name carry `marker`, so a search finds exactly them. */
async function usersWith(marker: string, names: string[]): Promise<string[]> {
  const stack = await t.stack();
  const service = client(stack, "service");
  const ids: string[] = [];
  for (const [i, name] of names.entries()) {
    const { data, error } = await service.auth.admin.createUser({
      email: `${marker}-${i}@example.test`,
      email_confirm: true,
      user_metadata: { full_name: name },
    });
    if (error) throw error;
    ids.push(data.user.id);
  }
  return ids;
}

let admin: TestUser | undefined;
async function anAdmin(): Promise<TestUser> {
  return admin ??= await signedInUser(await t.stack(), "admin");
}

Deno.test({
  ...integration,
  name: "a user reads and edits only their own profile; getUserById hides others",
  async fn() {
    const stack = await t.stack();
    const [alice, bob] = await Promise.all([signedInUser(stack), signedInUser(stack)]);
    const us = createUserSyncClient(alice.client);
    const me = await us.getMyProfile();
    assert.equal(me?.id, alice.id);
    assert.equal(me?.email, alice.email);
    assert.equal((await us.getUserById(alice.id))?.id, alice.id);
    assert.equal(await us.getUserById(bob.id), null, "another user's profile is not visible");

    const edited = await us.updateMyProfile({ name: "Alice Edited" });
    assert.equal(edited.name, "Alice Edited");
    assert.notEqual(edited.name_edited_at, null, "the edit is remembered");
    const [row] = await t.db()`select name from public.users where id = ${bob.id}`;
    assert.notEqual(row.name, "Alice Edited");
    await rejects(us.updateMyProfile({ avatar_url: "javascript:alert(1)" }), 400, "invalid_input");
  },
});

Deno.test({
  ...integration,
  name: "followMetadata forgets the edit and answers the profile synced from metadata",
  async fn() {
    const stack = await t.stack();
    const user = await signedInUser(stack);
    await t.db()`update auth.users set raw_user_meta_data = '{"full_name": "From Metadata"}'
      where id = ${user.id}`;
    const us = createUserSyncClient(user.client);
    await us.updateMyProfile({ name: "Mine" });
    const followed = await us.followMetadata("name");
    assert.equal(followed.name, "From Metadata");
    assert.equal(followed.name_edited_at, null);
    // A user cannot set a marker to keep the field frozen: only clearing is allowed.
    const { error, status } = await user.client.from("users")
      .update({ name_edited_at: new Date().toISOString() }).eq("id", user.id);
    assert.equal(status, 403);
    assert.equal(error?.code, "42501");
  },
});

Deno.test({
  ...integration,
  name: "anon sees nothing: no profile, and listing is refused",
  async fn() {
    const stack = await t.stack();
    const user = await signedInUser(stack);
    const anon = createUserSyncClient(client(stack));
    assert.equal(await anon.getMyProfile(), null);
    await rejects(anon.getUserById(user.id), 401, "forbidden");
    await rejects(anon.listUsers(), 401, "forbidden");
    await rejects(anon.updateMyProfile({ name: "x" }), 401, "unauthorized");
  },
});

Deno.test({
  ...integration,
  name: "an admin lists everyone: search over email and name, filters, pages and totals",
  async fn() {
    const us = createUserSyncClient((await anAdmin()).client);
    const marker = `srch${crypto.randomUUID().slice(0, 8)}`;
    const ids = await usersWith(marker, ["Ann", "Ben", "Cy", "Dee", "Eve"]);
    const all = await us.listUsers({ search: marker, pageSize: 2, orderBy: { column: "email", ascending: true } });
    assert.equal(all.total, 5);
    assert.equal(all.totalIsEstimate, false);
    assert.deepEqual(all.users.map((u) => u.email), [`${marker}-0@example.test`, `${marker}-1@example.test`]);
    const page3 = await us.listUsers({ search: marker.toUpperCase(), page: 3, pageSize: 2, orderBy: { column: "email", ascending: true } });
    assert.deepEqual(page3.users.map((u) => u.id), [ids[4]], "case-insensitive; the last page");
    assert.equal(page3.total, 5);
    const beyond = await us.listUsers({ search: marker, page: 9, pageSize: 2 });
    assert.deepEqual(beyond.users, []);
    assert.equal(beyond.total, 5);

    // By name (not in the email), and a filter on role.
    const nameMarker = `Zq${crypto.randomUUID().slice(0, 6)}`;
    const [named] = await usersWith(`n${crypto.randomUUID().slice(0, 8)}`, [`Person ${nameMarker}`]);
    const byName = await us.listUsers({ search: nameMarker.toLowerCase() });
    assert.deepEqual(byName.users.map((u: Profile) => u.id), [named]);
    await us.setRole(ids[0], "admin");
    const admins = await us.listUsers({ search: marker, role: "admin" });
    assert.deepEqual(admins.users.map((u) => u.id), [ids[0]]);
    assert.equal((await us.listUsers({ search: marker, provider: "email" })).total, 5);
    assert.equal((await us.listUsers({ search: marker, provider: "google" })).total, 0);

    // Soft-deleted users only with includeDeleted.
    await t.db()`update auth.users set deleted_at = now() where id = ${ids[1]}`;
    assert.equal((await us.listUsers({ search: marker })).total, 4);
    assert.equal((await us.listUsers({ search: marker, includeDeleted: true })).total, 5);

    // The plain list: exact below 100,000 profiles (the planner's row count above).
    const everyone = await us.listUsers({ pageSize: 3 });
    assert.equal(everyone.users.length, 3);
    const [{ n }] = await t.db()<{ n: number }[]>`
      select count(*)::int as n from public.users where deleted_at is null`;
    assert.equal(everyone.totalIsEstimate, false);
    assert.equal(everyone.total, n);
    await rejects(us.listUsers({ orderBy: { column: "id" as "email" } }), 400, "invalid_input");
  },
});

Deno.test({
  ...integration,
  name: "search terms are literal: LIKE wildcards, PostgREST syntax and quotes match themselves",
  async fn() {
    const us = createUserSyncClient((await anAdmin()).client);
    const m = crypto.randomUUID().slice(0, 8);
    const names = [`${m} 100% off`, `${m} 100x off`, `${m} a_b`, `${m} axb`, `${m} (x,y)."q"\\`];
    const ids = await usersWith(`lit${m}`, names);
    const find = async (s: string) => (await us.listUsers({ search: s })).users.map((u) => u.id);
    assert.deepEqual(await find(`${m} 100%`), [ids[0]]);
    assert.deepEqual(await find(`${m} a_b`), [ids[2]]);
    assert.deepEqual(await find(`${m} (x,y)."q"\\`), [ids[4]]);
    assert.deepEqual(await find(`${m} a*b`), [], "* is not a wildcard");
    assert.deepEqual((await find(`  ${m}   `)).sort(), [...ids].sort(), "surrounding blanks are trimmed");
  },
});

Deno.test({
  ...integration,
  name: "a user cannot setRole; an admin can, and Auth's app_metadata follows",
  async fn() {
    const stack = await t.stack();
    const [user, other] = await Promise.all([signedInUser(stack), signedInUser(stack)]);
    const us = createUserSyncClient(user.client);
    await rejects(us.setRole(user.id, "admin"), 403, "forbidden");
    await rejects(us.setRole(other.id, "admin"), 404, "not_found");
    const listed = await us.listUsers();
    assert.deepEqual(listed.users.map((u) => u.id), [user.id], "a non-admin lists only themselves");

    const byAdmin = createUserSyncClient((await anAdmin()).client);
    const promoted = await byAdmin.setRole(other.id, "admin");
    assert.equal(promoted.role, "admin");
    const [auth] = await t.db()`select raw_app_meta_data->>'role' as role from auth.users where id = ${other.id}`;
    assert.equal(auth.role, "admin");
    await rejects(byAdmin.setRole(other.id, "no_such_role"), 400, "invalid_input");
  },
});

Deno.test({
  ...integration,
  name: "status, syncAll, syncUser and createUser over the functions; errors carry the status",
  async fn() {
    const stack = await t.stack();
    const user = await signedInUser(stack);
    const us = createUserSyncClient(user.client);
    const err = await rejects(us.status(), 403, "forbidden");
    assert.match(err.message, /admin/);
    await rejects(us.syncAll({ dryRun: true }), 403, "forbidden");

    await t.db()`delete from public.users where id = ${user.id}`;
    assert.equal(await us.getMyProfile(), null);
    const healed = await us.ensureMyProfile();
    assert.equal(healed?.id, user.id, "ensureMyProfile self-syncs a missing profile");
    assert.equal((await us.syncUser(user.id)).id, user.id);

    const byAdmin = createUserSyncClient((await anAdmin()).client);
    const status = await byAdmin.status();
    assert.equal(typeof status.auth_users, "number");
    assert.equal(typeof status.health.ok, "boolean");
    const report = await byAdmin.syncAll({ dryRun: true });
    assert.ok(report.skipped === true || report.dry_run === true);
    const email = `created-${crypto.randomUUID().slice(0, 8)}@example.test`;
    const created = await byAdmin.createUser({ email, name: "Made By Admin", email_confirm: true });
    assert.equal(created.email, email);
    assert.equal(created.name, "Made By Admin");
    const dup = await rejects(byAdmin.createUser({ email }), 409, "conflict");
    assert.equal(dup.toJSON().status, 409);
  },
});

Deno.test({
  ...integration,
  name: "a network failure is a UserSyncError with status 0",
  async fn() {
    const dead = createClient("http://127.0.0.1:9", "anon", {
      auth: { persistSession: false, autoRefreshToken: false },
    });
    const us = createUserSyncClient(dead);
    const err = await rejects(us.status(), 0, "network_error");
    assert.ok(err.message.length > 0);
  },
});

testNoSecretsLogged(t, "client");
