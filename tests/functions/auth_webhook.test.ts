// auth-webhook over real HTTP: Supabase Auth hooks signed with Standard Webhooks
// (before_user_created, custom_access_token), Database Webhook payloads for
// auth.users authenticated by the secret key, and the whole loop with the Auth
// stand-in calling the hooks during sign-up and sign-in (driven by supabase-js).
import assert from "node:assert/strict";
import { createAuthWebhookHandler } from "../../supabase/functions/auth-webhook/handler.ts";
import type { Handler } from "../../supabase/functions/_shared/runtime.ts";
import { signWebhook } from "../../supabase/functions/_shared/webhook_signature.ts";
import { REQUIRED_ACCESS_TOKEN_CLAIMS } from "../../platform/auth_standin.ts";
import { startLocalStack } from "../../platform/gateway.ts";
import {
  assertErrorShape,
  call,
  client,
  decodeJwt,
  dropProfile,
  integration,
  lockUsersTable,
  logLines,
  password,
  profileExists,
  serviceHeaders,
  signedHeaders,
  signedInUser,
  testNoSecretsLogged,
  testStack,
  uniqueEmail,
  unreachableDbUrl,
  userHeaders,
} from "./_helpers.ts";
import type { LocalStack } from "../../platform/gateway.ts";

const t = testStack({ functionEnv: { USER_SYNC_DENIED_EMAIL_DOMAINS: "blocked.test, spam.test" } });

/** POSTs a payload to auth-webhook signed as Supabase Auth signs its hooks. */
async function hook(
  stack: LocalStack,
  payload: unknown,
  opts: Parameters<typeof signedHeaders>[2] = {},
) {
  const body = JSON.stringify(payload);
  return await call(stack, "auth-webhook", {
    method: "POST",
    headers: signedHeaders(stack.hookSecret, body, opts),
    body,
  });
}

/** A signed hook request for an auth-webhook handler called in-process. */
function signedHookRequest(stack: LocalStack, payload: unknown): Request {
  const body = JSON.stringify(payload);
  return new Request("http://localhost/auth-webhook", {
    method: "POST",
    headers: signedHeaders(stack.hookSecret, body),
    body,
  });
}

/**
 * Runs `use` with an in-process auth-webhook handler configured as the stack's function,
 * with `env` on top, and closes the handler afterwards.
 */
async function withHandler(
  stack: LocalStack,
  env: Record<string, string | undefined>,
  use: (handler: Handler) => Promise<void>,
): Promise<void> {
  const handler = createAuthWebhookHandler({ env: { ...stack.functionEnv, ...env } });
  try {
    await use(handler);
  } finally {
    await handler.close();
  }
}

function beforeUserCreated(email: string | null, extra: Record<string, unknown> = {}) {
  return {
    metadata: {
      uuid: crypto.randomUUID(),
      time: new Date().toISOString(),
      name: "before-user-created",
      ip_address: "127.0.0.1",
    },
    user: {
      id: crypto.randomUUID(),
      aud: "authenticated",
      role: "authenticated",
      email: email ?? "",
      phone: "",
      app_metadata: { provider: "email", providers: ["email"] },
      user_metadata: {},
      identities: [],
      created_at: new Date().toISOString(),
      updated_at: new Date().toISOString(),
      is_anonymous: false,
      ...extra,
    },
  };
}

function accessTokenPayload(userId: string) {
  const now = Math.floor(Date.now() / 1000);
  return {
    user_id: userId,
    claims: {
      aud: "authenticated",
      exp: now + 3600,
      iat: now,
      iss: "http://127.0.0.1:54321/auth/v1",
      sub: userId,
      email: "someone@example.test",
      phone: "",
      app_metadata: { provider: "email", providers: ["email"] },
      user_metadata: { name: "Someone" },
      role: "authenticated",
      aal: "aal1",
      amr: [{ method: "password", timestamp: now }],
      session_id: crypto.randomUUID(),
      is_anonymous: false,
    },
    authentication_method: "password",
  };
}

// ---------------------------------------------------------------------------
// before_user_created
// ---------------------------------------------------------------------------
Deno.test({
  ...integration,
  name: "before_user_created: allowed sign-ups get 200 {}",
  async fn() {
    const stack = await t.stack();
    for (const email of [uniqueEmail(), null]) {
      const res = await hook(stack, beforeUserCreated(email));
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, {});
      assert.match(res.headers.get("content-type")!, /^application\/json/);
    }
  },
});

Deno.test({
  ...integration,
  name:
    "before_user_created: a denied domain is rejected with a 200 carrying {error: {http_code, message}}",
  async fn() {
    const stack = await t.stack();
    for (
      const email of [
        uniqueEmail("x", "blocked.test"),
        uniqueEmail("x", "mail.spam.test"),
        "Someone@BLOCKED.TEST",
      ]
    ) {
      const res = await hook(stack, beforeUserCreated(email));
      assert.equal(res.status, 200, "a 4xx would become a generic 500 in Auth");
      assert.equal(res.body.error.http_code, 403);
      assert.match(res.body.error.message, /domain/);
    }
  },
});

Deno.test({
  ...integration,
  name: "before_user_created: an allow-list admits only its domains",
  async fn() {
    const stack = await t.stack();
    await withHandler(
      stack,
      { USER_SYNC_ALLOWED_EMAIL_DOMAINS: "corp.example" },
      async (handler) => {
        const ask = async (email: string) => {
          const res = await handler(signedHookRequest(stack, beforeUserCreated(email)));
          assert.equal(res.status, 200);
          return await res.json();
        };
        assert.deepEqual(await ask("a@corp.example"), {});
        assert.deepEqual(await ask("a@eu.corp.example"), {});
        assert.equal((await ask("a@gmail.test")).error.http_code, 403);
      },
    );
  },
});

// ---------------------------------------------------------------------------
// custom_access_token
// ---------------------------------------------------------------------------
Deno.test({
  ...integration,
  name: "custom_access_token: adds user_role from the profile and keeps every claim",
  async fn() {
    const stack = await t.stack();
    const admin = await signedInUser(stack, "admin");
    const payload = accessTokenPayload(admin.id);
    const res = await hook(stack, payload);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { claims: { ...payload.claims, user_role: "admin" } });
    const plain = await signedInUser(stack);
    assert.equal((await hook(stack, accessTokenPayload(plain.id))).body.claims.user_role, "user");
  },
});

Deno.test({
  ...integration,
  name: "custom_access_token: retries (new webhook-id) get the same answer and write nothing",
  async fn() {
    const stack = await t.stack();
    const user = await signedInUser(stack, "admin");
    const rowVersion = async () => {
      const [row] = await t
        .db()`select xmin::text as v, updated_at, synced_at from public.users where id = ${user.id}`;
      return { ...row };
    };
    const before = await rowVersion();
    const payload = accessTokenPayload(user.id);
    const first = await hook(stack, payload);
    const second = await hook(stack, payload);
    assert.deepEqual(second.body, first.body);
    assert.deepEqual(await rowVersion(), before, "the signing-in user's row is not written");
  },
});

Deno.test({
  ...integration,
  name: "custom_access_token: no profile, the claims go back unchanged",
  async fn() {
    const stack = await t.stack();
    const payload = accessTokenPayload(crypto.randomUUID());
    const res = await hook(stack, payload);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { claims: payload.claims });
  },
});

Deno.test({
  ...integration,
  name: "custom_access_token: a slow database answers unchanged claims well within the hook's 5 s",
  async fn() {
    const stack = await t.stack();
    const user = await signedInUser(stack, "admin");
    const payload = accessTokenPayload(user.id);
    // the role is read from auth.users (Auth's truth), so that is what is slow here
    const release = await lockUsersTable(t.db(), "auth.users");
    try {
      const res = await hook(stack, payload);
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, { claims: payload.claims });
      assert.ok(res.ms >= 1400, `waited for the 1.5 s budget (${Math.round(res.ms)} ms)`);
      assert.ok(res.ms < 3000, `answered in ${Math.round(res.ms)} ms`);
    } finally {
      await release();
    }
    // and the lookup works again at once: the database ended the slow lookup itself,
    // so nothing of it is left to land on the connection's next query.
    const role = (await hook(stack, payload)).body.claims.user_role;
    assert.equal(role, "admin");
  },
});

Deno.test({
  ...integration,
  name: "custom_access_token: a database that is down answers unchanged claims at once",
  async fn() {
    const stack = await t.stack();
    // An admin: with the database up, the same request answers user_role "admin".
    const admin = await signedInUser(stack, "admin");
    const payload = accessTokenPayload(admin.id);
    assert.equal((await hook(stack, payload)).body.claims.user_role, "admin");
    await withHandler(stack, { SUPABASE_DB_URL: unreachableDbUrl() }, async (handler) => {
      const request = signedHookRequest(stack, payload);
      const t0 = performance.now();
      const res = await handler(request);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { claims: payload.claims });
      assert.ok(performance.now() - t0 < 2000);
    });
  },
});

// ---------------------------------------------------------------------------
// signatures
// ---------------------------------------------------------------------------
Deno.test({
  ...integration,
  name:
    "401: bad signature, wrong secret, tampered body, stale or future timestamp, missing headers",
  async fn() {
    const stack = await t.stack();
    const payload = beforeUserCreated(uniqueEmail());
    const body = JSON.stringify(payload);
    const post = (headers: Record<string, string>, b = body) =>
      call(stack, "auth-webhook", { method: "POST", headers, body: b });
    const old = Math.floor(Date.now() / 1000) - 301;
    const cases: [string, Record<string, string>, string?][] = [
      ["garbage signature", signedHeaders(stack.hookSecret, body, { signature: "v1,AAAA" })],
      ["wrong secret", signedHeaders("v1,whsec_b3RoZXItc2VjcmV0LW90aGVyLXByb2plY3Q=", body)],
      [
        "tampered body",
        signedHeaders(stack.hookSecret, body),
        body.replace("127.0.0.1", "10.0.0.1"),
      ],
      ["stale timestamp", signedHeaders(stack.hookSecret, body, { timestamp: old })],
      ["future timestamp", signedHeaders(stack.hookSecret, body, { timestamp: old + 700 })],
    ];
    for (const [name, headers, b] of cases) {
      const res = await post(headers, b);
      assert.equal(res.status, 401, name);
      assertErrorShape(res.body, 401, "invalid_signature");
    }
    const noSignature = signedHeaders(stack.hookSecret, body);
    delete noSignature["webhook-signature"];
    const missing = await post(noSignature);
    assert.equal(missing.status, 401);
    assert.equal(missing.body.error.details.reason, "missing_headers");
  },
});

Deno.test({
  ...integration,
  name: "several signatures in one header (key rotation), as Auth sends them",
  async fn() {
    const stack = await t.stack();
    const body = JSON.stringify(beforeUserCreated(uniqueEmail()));
    const id = `msg_${crypto.randomUUID()}`;
    const ts = Math.floor(Date.now() / 1000);
    const other = signWebhook("v1,whsec_b3RoZXItc2VjcmV0LW90aGVyLXByb2plY3Q=", id, ts, body);
    const ours = signWebhook(stack.hookSecret, id, ts, body);
    const res = await call(stack, "auth-webhook", {
      method: "POST",
      headers: signedHeaders(stack.hookSecret, body, {
        id,
        timestamp: ts,
        signature: `${other}, ${ours}`,
      }),
      body,
    });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, {});
  },
});

Deno.test({
  ...integration,
  name: "400: a signed payload that is no known hook",
  async fn() {
    const stack = await t.stack();
    const res = await hook(stack, { hello: "world" });
    assert.equal(res.status, 400);
    assertErrorShape(res.body, 400, "invalid_input");
  },
});

// ---------------------------------------------------------------------------
// Database Webhooks (auth.users)
// ---------------------------------------------------------------------------
function dbWebhook(type: "INSERT" | "UPDATE" | "DELETE", record: unknown, old: unknown = null) {
  return { type, table: "users", schema: "auth", record, old_record: old };
}

/** POSTs a Database Webhook payload to auth-webhook with the secret key, as the webhook sends it. */
async function sendDbWebhook(stack: LocalStack, payload: unknown) {
  return await call(stack, "auth-webhook", {
    method: "POST",
    headers: serviceHeaders(stack),
    json: payload,
  });
}

Deno.test({
  ...integration,
  name: "Database Webhook INSERT and UPDATE sync the user (secret key)",
  async fn() {
    const stack = await t.stack();
    const { data } = await client(stack, "service").auth.admin.createUser({
      email: uniqueEmail("dbhook"),
      email_confirm: true,
    });
    const id = data.user!.id;
    await dropProfile(t.db(), id);
    const [record] = await t
      .db()`select id, email, raw_app_meta_data, raw_user_meta_data from auth.users where id = ${id}`;
    const inserted = await sendDbWebhook(stack, dbWebhook("INSERT", record));
    assert.equal(inserted.status, 200);
    assert.deepEqual(inserted.body, { ok: true, type: "INSERT", user_id: id, result: "inserted" });
    assert.equal(await profileExists(t.db(), id), true);
    // drift, then an UPDATE webhook repairs it; a replay changes nothing more
    await t.db()`update public.users set email = 'drift@example.invalid' where id = ${id}`;
    const updated = await client(stack, "service").functions.invoke("auth-webhook", {
      body: dbWebhook("UPDATE", record, record),
    });
    assert.equal(updated.error, null);
    assert.equal(updated.data.result, "updated");
    const [p] = await t.db()`select email from public.users where id = ${id}`;
    assert.equal(p.email, record.email);
    const replay = await sendDbWebhook(stack, dbWebhook("UPDATE", record, record));
    assert.equal(replay.body.result, "unchanged");
  },
});

Deno.test({
  ...integration,
  name: "Database Webhook DELETE: the profile is gone once the auth user is",
  async fn() {
    const stack = await t.stack();
    const { data } = await client(stack, "service").auth.admin.createUser({
      email: uniqueEmail("dbdel"),
      email_confirm: true,
    });
    const id = data.user!.id;
    const [record] = await t.db()`select id, email from auth.users where id = ${id}`;
    // the auth user still exists: DELETE keeps the profile in line with it
    const early = await sendDbWebhook(stack, dbWebhook("DELETE", null, record));
    assert.equal(early.status, 200);
    assert.equal(early.body.result, "unchanged");
    assert.equal(await profileExists(t.db(), id), true);
    await client(stack, "service").auth.admin.deleteUser(id);
    const res = await sendDbWebhook(stack, dbWebhook("DELETE", null, record));
    assert.equal(res.status, 200);
    assert.ok(["deleted", "unchanged"].includes(res.body.result));
    assert.equal(await profileExists(t.db(), id), false);
  },
});

Deno.test({
  ...integration,
  name: "Database Webhooks: 400 for other tables or shapes, 401 without the key, 403 for users",
  async fn() {
    const stack = await t.stack();
    const id = crypto.randomUUID();
    for (
      const payload of [
        { type: "INSERT", table: "users", schema: "public", record: { id }, old_record: null },
        { type: "INSERT", table: "orders", schema: "auth", record: { id }, old_record: null },
        { type: "TRUNCATE", table: "users", schema: "auth", record: null, old_record: null },
        dbWebhook("INSERT", { id: "not-a-uuid" }),
        dbWebhook("UPDATE", null),
      ]
    ) {
      const res = await sendDbWebhook(stack, payload);
      assert.equal(res.status, 400, JSON.stringify(payload));
      assertErrorShape(res.body, 400, "invalid_input");
    }
    const none = await call(stack, "auth-webhook", {
      method: "POST",
      json: dbWebhook("INSERT", { id }),
    });
    assert.equal(none.status, 401);
    const anon = await client(stack).functions.invoke("auth-webhook", {
      body: dbWebhook("INSERT", { id }),
    });
    assert.equal(anon.error?.context?.status, 401);
    const admin = await signedInUser(stack, "admin");
    const asAdmin = await call(stack, "auth-webhook", {
      method: "POST",
      headers: userHeaders(stack, admin.accessToken),
      json: dbWebhook("INSERT", { id }),
    });
    assert.equal(asAdmin.status, 403);
    assertErrorShape(asAdmin.body, 403, "forbidden");
  },
});

Deno.test({
  ...integration,
  name: "Database Webhooks: 503 when the database is unreachable",
  async fn() {
    const stack = await t.stack();
    await withHandler(stack, { SUPABASE_DB_URL: unreachableDbUrl() }, async (handler) => {
      const res = await handler(
        new Request("http://localhost/auth-webhook", {
          method: "POST",
          headers: { ...serviceHeaders(stack), "content-type": "application/json" },
          body: JSON.stringify(dbWebhook("INSERT", { id: crypto.randomUUID() })),
        }),
      );
      assert.equal(res.status, 503);
      assertErrorShape(await res.json(), 503, "database_unavailable");
    });
  },
});

Deno.test({
  ...integration,
  name:
    "a user whose id is not RFC 4122 (11111111-1111-1111-1111-111111111111) gets their role claim and syncs through the Database Webhook",
  async fn() {
    const stack = await t.stack();
    const id = "11111111-1111-1111-1111-111111111111";
    const db = t.db();
    await db`delete from auth.users where id = ${id}`;
    // a seeded user, as an import would write it
    await db`
      insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
      values ('00000000-0000-0000-0000-000000000000', ${id}, 'authenticated', 'authenticated',
              'seeded-11111111@example.test', '{"provider": "email", "providers": ["email"], "role": "admin"}',
              '{}', now(), now())`;
    try {
      const res = await hook(stack, accessTokenPayload(id));
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.claims.user_role, "admin");
      const webhook = await sendDbWebhook(stack, dbWebhook("UPDATE", { id }, { id }));
      assert.equal(webhook.status, 200, JSON.stringify(webhook.body));
      assert.equal(webhook.body.user_id, id);
    } finally {
      await db`delete from auth.users where id = ${id}`;
    }
  },
});

Deno.test({
  ...integration,
  name:
    "a hook request without a configured hook secret is 503 misconfigured; the log names the variable, the answer does not",
  async fn() {
    const stack = await t.stack();
    await withHandler(stack, { USER_SYNC_HOOK_SECRET: undefined }, async (handler) => {
      const res = await handler(signedHookRequest(stack, beforeUserCreated(uniqueEmail())));
      assert.equal(res.status, 503);
      const json = await res.json();
      assertErrorShape(json, 503, "misconfigured");
      assert.doesNotMatch(JSON.stringify(json), /USER_SYNC_HOOK_SECRET/);
      assert.ok(
        logLines("auth-webhook", "configuration invalid").some((l) =>
          JSON.stringify(l.variables) === JSON.stringify(["USER_SYNC_HOOK_SECRET"])
        ),
        "the log names the variable",
      );
    });
  },
});

// ---------------------------------------------------------------------------
// The whole loop: Auth (stand-in) calls the hooks during sign-up and sign-in
// ---------------------------------------------------------------------------
Deno.test({
  ...integration,
  name: "end to end: a denied domain cannot sign up; signed-in tokens carry user_role",
  async fn() {
    const stack = await t.stack();
    const anon = client(stack);
    const denied = await anon.auth.signUp({
      email: uniqueEmail("e2e", "blocked.test"),
      password: password(),
    });
    assert.equal(denied.error?.status, 403);
    assert.match(denied.error!.message, /domain/);

    const email = uniqueEmail("e2e");
    const pw = password();
    const signUp = await anon.auth.signUp({
      email,
      password: pw,
      options: { data: { full_name: "End To End" } },
    });
    assert.equal(signUp.error, null);
    const claims = decodeJwt(signUp.data.session!.access_token);
    assert.equal(claims.user_role, "user");
    for (const required of REQUIRED_ACCESS_TOKEN_CLAIMS) {
      assert.ok(required in claims, `claim ${required} preserved`);
    }
    const [profile] = await t.db()`select name, role from public.users where id = ${claims.sub}`;
    assert.deepEqual({ ...profile }, { name: "End To End", role: "user" });

    // promoted by an admin (in the database), the next sign-in carries the new role
    await t.db()`update public.users set role = 'admin' where id = ${claims.sub}`;
    const again = client(stack);
    const signIn = await again.auth.signInWithPassword({ email, password: pw });
    assert.equal(signIn.error, null);
    assert.equal(decodeJwt(signIn.data.session!.access_token).user_role, "admin");
    assert.equal((await again.functions.invoke("sync-all", { method: "GET" })).error, null);
  },
});

Deno.test({
  ...integration,
  name:
    "end to end: sign-in still works, without user_role, when the database is down for the hook",
  async fn() {
    const stack = await t.stack();
    const user = await signedInUser(stack);
    // a second project whose auth-webhook cannot reach the database
    const degraded = await startLocalStack({
      port: 0,
      dbUrl: stack.dbUrl,
      functionEnv: { SUPABASE_DB_URL: unreachableDbUrl() },
    });
    try {
      const c = client(degraded);
      const { data, error } = await c.auth.signInWithPassword({
        email: user.email,
        password: user.password,
      });
      assert.equal(error, null);
      const claims = decodeJwt(data.session!.access_token);
      assert.equal(claims.sub, user.id);
      assert.equal(claims.user_role, undefined);
    } finally {
      await degraded.close();
    }
  },
});

testNoSecretsLogged(t, "auth-webhook");
