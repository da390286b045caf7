// create-user over real HTTP: the auth user is created through Auth's admin API
// (the stand-in writes real auth.users rows, the real trigger runs), the profile is
// guaranteed before the 201; duplicates are 409; a profile that cannot be confirmed
// is said so in the answer and in user_sync.errors.
import assert from "node:assert/strict";
import { createCreateUserHandler } from "../../supabase/functions/create-user/handler.ts";
import { startLocalStack } from "../../platform/gateway.ts";
import {
  assertErrorShape,
  testNoSecretsLogged,
  call,
  client,
  integration,
  lockUsersTable,
  password,
  serviceHeaders,
  signedInUser,
  testStack,
  uniqueEmail,
} from "./_helpers.ts";

const t = testStack();

Deno.test({
  ...integration,
  name: "201 with the profile: name, avatar and role as asked, auth-owned fields mirrored",
  async fn() {
    const stack = await t.stack();
    const email = uniqueEmail("created");
    const pw = password();
    const { data, error } = await client(stack, "service").functions.invoke("create-user", {
      body: {
        email,
        password: pw,
        email_confirm: true,
        name: "  Ada Lovelace ",
        avatar_url: "https://example.test/ada.png",
        role: "admin",
        user_metadata: { locale: "en-GB" },
      },
    });
    assert.equal(error, null);
    const u = data.user;
    assert.match(u.id, /^[0-9a-f-]{36}$/);
    assert.equal(u.email, email);
    assert.equal(u.name, "Ada Lovelace");
    assert.equal(u.avatar_url, "https://example.test/ada.png");
    assert.equal(u.role, "admin");
    assert.equal(u.provider, "email");
    assert.deepEqual(u.providers, ["email"]);
    assert.ok(u.email_confirmed_at, "email confirmed");
    // the role lives in app_metadata, where only the service role writes
    const [au] = await t
      .db()`select raw_app_meta_data, raw_user_meta_data from auth.users where id = ${u.id}`;
    assert.equal(au.raw_app_meta_data.role, "admin");
    assert.equal(au.raw_user_meta_data.role, undefined);
    assert.equal(au.raw_user_meta_data.locale, "en-GB");
    // the answer is what the database holds
    const [p] = await t.db()`select role, name from public.users where id = ${u.id}`;
    assert.deepEqual({ ...p }, { role: "admin", name: "Ada Lovelace" });
    // the new admin can sign in and is an admin for the functions
    const admin = client(stack);
    assert.equal((await admin.auth.signInWithPassword({ email, password: pw })).error, null);
    assert.equal((await admin.functions.invoke("sync-all", { method: "GET" })).error, null);
  },
});

Deno.test({
  ...integration,
  name: "an admin may create users; the default role is user; phone-only users work",
  async fn() {
    const stack = await t.stack();
    const admin = await signedInUser(stack, "admin");
    const viaAdmin = await admin.client.functions.invoke("create-user", {
      body: { email: uniqueEmail("by-admin") },
    });
    assert.equal(viaAdmin.error, null);
    assert.equal(viaAdmin.data.user.role, "user");
    assert.equal(viaAdmin.data.user.email_confirmed_at, null);
    const phone = `+1555${String(Math.floor(Math.random() * 1e7)).padStart(7, "0")}`;
    const viaPhone = await call(stack, "create-user", {
      method: "POST",
      headers: serviceHeaders(stack),
      json: { phone, phone_confirm: true, name: "Phone Person" },
    });
    assert.equal(viaPhone.status, 201);
    assert.equal(viaPhone.body.user.phone, phone.slice(1));
    assert.equal(viaPhone.body.user.email, null);
    assert.equal(viaPhone.body.user.provider, "phone");
    assert.equal(viaPhone.body.user.name, "Phone Person");
  },
});

Deno.test({
  ...integration,
  name: "409 on a duplicate email (any case), and nothing else is created",
  async fn() {
    const stack = await t.stack();
    const email = uniqueEmail("dup");
    const first = await call(stack, "create-user", {
      method: "POST",
      headers: serviceHeaders(stack),
      json: { email },
    });
    assert.equal(first.status, 201);
    const [{ n: before }] = await t.db()<
      { n: number }[]
    >`select count(*)::int as n from auth.users`;
    const again = await client(stack, "service").functions.invoke("create-user", {
      body: { email: email.toUpperCase() },
    });
    assert.equal(again.error?.context?.status, 409);
    const body = await again.error.context.json();
    assertErrorShape(body, 409, "conflict");
    const [{ n: after }] = await t.db()<{ n: number }[]>`select count(*)::int as n from auth.users`;
    assert.equal(after, before);
  },
});

Deno.test({
  ...integration,
  name: "400 on invalid input, with zod details; unknown roles are refused before Auth",
  async fn() {
    const stack = await t.stack();
    const cases: [unknown, string][] = [
      [{}, "email"],
      [{ email: "not-an-email" }, "email"],
      [{ email: uniqueEmail(), password: "123" }, "password"],
      [{ email: uniqueEmail(), avatar_url: "javascript:alert(1)" }, "avatar_url"],
      [{ email: uniqueEmail(), app_metadata: { role: "admin" } }, ""],
    ];
    for (const [body, path] of cases) {
      const res = await call(stack, "create-user", {
        method: "POST",
        headers: serviceHeaders(stack),
        json: body,
      });
      assert.equal(res.status, 400, JSON.stringify(body));
      assertErrorShape(res.body, 400, "invalid_input");
      assert.ok(Array.isArray(res.body.error.details));
      if (path) {
        assert.ok(
          res.body.error.details.some((d: { path: string }) => d.path === path),
          JSON.stringify(res.body),
        );
      }
    }
    const email = uniqueEmail("unknown-role");
    const role = await call(stack, "create-user", {
      method: "POST",
      headers: serviceHeaders(stack),
      json: { email, role: "superuser" },
    });
    assert.equal(role.status, 400);
    assert.equal(role.body.error.details[0].path, "role");
    const rows = await t.db()`select 1 from auth.users where email = ${email}`;
    assert.equal(rows.length, 0, "no auth user was created");
    const notJson = await call(stack, "create-user", {
      method: "POST",
      headers: { ...serviceHeaders(stack), "content-type": "application/json" },
      body: "[1,",
    });
    assert.equal(notJson.status, 400);
  },
});

Deno.test({
  ...integration,
  name: "a sign-up policy rejection by Auth's before_user_created hook is a 403",
  async fn() {
    // this project's Auth calls our auth-webhook, which denies the domain
    const stack = await startLocalStack({
      port: 0,
      functionEnv: { USER_SYNC_DENIED_EMAIL_DOMAINS: "blocked.test" },
    });
    try {
      const email = uniqueEmail("policy", "blocked.test");
      const res = await call(stack, "create-user", {
        method: "POST",
        headers: serviceHeaders(stack),
        json: { email },
      });
      assert.equal(res.status, 403);
      assertErrorShape(res.body, 403, "forbidden");
      assert.match(res.body.error.message, /domain/);
      assert.equal((await t.db()`select 1 from auth.users where email = ${email}`).length, 0);
      const allowed = await call(stack, "create-user", {
        method: "POST",
        headers: serviceHeaders(stack),
        json: { email: uniqueEmail() },
      });
      assert.equal(allowed.status, 201);
    } finally {
      await stack.close();
    }
  },
});

Deno.test({
  ...integration,
  name:
    "Auth succeeded but the profile could not be confirmed: 503 with the user id, recorded in user_sync.errors",
  async fn() {
    const stack = await t.stack();
    let release: (() => Promise<void>) | undefined;
    // After Auth has created the user (and committed), the profile table becomes
    // unavailable: the confirmation times out.
    const faultyFetch: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      const url = input instanceof Request ? input.url : String(input);
      if (url.endsWith("/auth/v1/admin/users") && res.ok) release = await lockUsersTable(t.db());
      return res;
    };
    const handler = createCreateUserHandler({
      env: { ...stack.functionEnv, USER_SYNC_STATEMENT_TIMEOUT_MS: "700" },
      fetch: faultyFetch,
    });
    const email = uniqueEmail("unconfirmed");
    let userId: string;
    try {
      const res = await handler(
        new Request("http://localhost/create-user", {
          method: "POST",
          headers: { ...serviceHeaders(stack), "content-type": "application/json" },
          body: JSON.stringify({ email }),
        }),
      );
      assert.equal(res.status, 503);
      const body = await res.json();
      assertErrorShape(body, 503, "profile_not_confirmed");
      assert.equal(body.error.details.auth_user_created, true);
      assert.equal(body.error.details.error_recorded, true);
      userId = body.error.details.user_id;
      assert.match(userId, /^[0-9a-f-]{36}$/);
    } finally {
      await release?.();
      await handler.close();
    }
    const [au] = await t.db()`select email from auth.users where id = ${userId}`;
    assert.equal(au.email, email, "the auth user exists");
    const errors = await t.db()`
      select source, sqlstate, message from user_sync.errors where user_id = ${userId} and resolved_at is null`;
    assert.equal(errors.length, 1);
    assert.equal(errors[0].source, "create-user");
    assert.equal(errors[0].sqlstate, "57014");
    assert.match(errors[0].message, /profile not confirmed/);
    // a later sync of the user heals it and resolves the error
    await t.db()`select user_sync.sync_user(${userId})`;
    const open = await t
      .db()`select 1 from user_sync.errors where user_id = ${userId} and resolved_at is null`;
    assert.equal(open.length, 0);
  },
});

testNoSecretsLogged(t, "create-user");
