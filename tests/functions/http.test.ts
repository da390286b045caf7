// Integration tests over real HTTP, common to the three functions: routes (404),
// methods (405), CORS preflight, media type (415), body size (413), JSON (400),
// callers (401/403: none, anon, bad token, non-admin; admin and secret key pass),
// user JWTs verified with HS256, through Auth, or through the JWKS (ES256), and
// 503 when the database or Auth cannot be reached. The functions are served by
// Deno on localhost (platform/gateway.ts) against the local database, and
// called with supabase-js and raw fetch.
import assert from "node:assert/strict";
import { createSyncAllHandler } from "../../supabase/functions/sync-all/handler.ts";
import { createCreateUserHandler } from "../../supabase/functions/create-user/handler.ts";
import { startLocalStack } from "../../platform/gateway.ts";
import { localDbUrl, withCredentials } from "../../platform/local.ts";
import {
  assertErrorShape,
  assertNoSecretsLogged,
  call,
  client,
  closedPort,
  unreachableDbUrl,
  decodeJwt,
  integration,
  serviceHeaders,
  signedInUser,
  testStack,
  userHeaders,
} from "./_helpers.ts";

const t = testStack();
const FUNCTIONS = ["sync-all", "create-user", "auth-webhook"];

Deno.test({
  ...integration,
  name: "404: unknown paths under a function and unknown functions answer JSON",
  async fn() {
    const stack = await t.stack();
    const sub = await call(stack, "sync-all/extra", { headers: serviceHeaders(stack) });
    assert.equal(sub.status, 404);
    assertErrorShape(sub.body, 404, "not_found");
    const unknown = await call(stack, "no-such-function", { headers: serviceHeaders(stack) });
    assert.equal(unknown.status, 404);
    assertErrorShape(unknown.body, 404, "not_found");
  },
});

Deno.test({
  ...integration,
  name: "405: wrong methods answer JSON with an Allow header",
  async fn() {
    const stack = await t.stack();
    for (
      const [fn, method, allow] of [
        ["sync-all", "DELETE", "GET, POST, OPTIONS"],
        ["create-user", "GET", "POST, OPTIONS"],
        ["auth-webhook", "PUT", "POST, OPTIONS"],
      ]
    ) {
      const res = await call(stack, fn, { method, headers: serviceHeaders(stack) });
      assert.equal(res.status, 405, fn);
      assertErrorShape(res.body, 405, "method_not_allowed");
      assert.equal(res.headers.get("allow"), allow);
    }
  },
});

Deno.test({
  ...integration,
  name: "CORS: preflight answered for browsers, and CORS headers on every answer",
  async fn() {
    const stack = await t.stack();
    for (const fn of FUNCTIONS) {
      const res = await call(stack, fn, {
        method: "OPTIONS",
        headers: {
          origin: "http://localhost:3000",
          "access-control-request-method": "POST",
          "access-control-request-headers": "authorization, x-client-info, apikey, content-type",
        },
      });
      assert.equal(res.status, 200, fn);
      assert.equal(res.headers.get("access-control-allow-origin"), "*");
      assert.match(res.headers.get("access-control-allow-methods")!, /POST/);
      for (const h of ["authorization", "x-client-info", "apikey", "content-type"]) {
        assert.match(res.headers.get("access-control-allow-headers")!, new RegExp(h));
      }
    }
    const denied = await call(stack, "sync-all", {
      method: "GET",
      headers: { origin: "http://localhost:3000" },
    });
    assert.equal(denied.status, 401);
    assert.equal(
      denied.headers.get("access-control-allow-origin"),
      "*",
      "errors carry CORS headers too",
    );
  },
});

Deno.test({
  ...integration,
  name: "CORS: a configured origin list answers only those origins",
  async fn() {
    const stack = await t.stack();
    const handler = createSyncAllHandler({
      env: { ...stack.functionEnv, USER_SYNC_CORS_ALLOWED_ORIGINS: "https://app.example" },
    });
    try {
      const ask = (origin: string) =>
        handler(
          new Request("http://localhost/sync-all", { method: "OPTIONS", headers: { origin } }),
        );
      assert.equal(
        (await ask("https://app.example")).headers.get("access-control-allow-origin"),
        "https://app.example",
      );
      assert.equal(
        (await ask("https://evil.example")).headers.get("access-control-allow-origin"),
        null,
      );
    } finally {
      await handler.close();
    }
  },
});

Deno.test({
  ...integration,
  name: "415: a body that is not JSON is refused",
  async fn() {
    const stack = await t.stack();
    for (const fn of FUNCTIONS) {
      const res = await call(stack, fn, {
        method: "POST",
        headers: { ...serviceHeaders(stack), "content-type": "text/plain" },
        body: "dry_run=true",
      });
      assert.equal(res.status, 415, fn);
      assertErrorShape(res.body, 415, "unsupported_media_type");
    }
  },
});

Deno.test({
  ...integration,
  name: "413: bodies over 1 MiB, declared or streamed without Content-Length",
  async fn() {
    const stack = await t.stack();
    const big = JSON.stringify({
      email: "a@example.test",
      user_metadata: { blob: "x".repeat(1024 * 1024) },
    });
    const declared = await call(stack, "create-user", {
      method: "POST",
      headers: { ...serviceHeaders(stack), "content-type": "application/json" },
      body: big,
    });
    assert.equal(declared.status, 413);
    assertErrorShape(declared.body, 413, "payload_too_large");

    const bytes = new TextEncoder().encode(big);
    let offset = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (offset >= bytes.length) return c.close();
        c.enqueue(bytes.slice(offset, offset + 65536));
        offset += 65536;
      },
    });
    const res = await fetch(`${stack.url}/functions/v1/sync-all`, {
      method: "POST",
      headers: { ...serviceHeaders(stack), "content-type": "application/json" },
      body: stream,
    });
    assert.equal(res.status, 413);
    assertErrorShape(await res.json(), 413, "payload_too_large");
  },
});

Deno.test({
  ...integration,
  name: "400: malformed JSON and invalid input, with zod details",
  async fn() {
    const stack = await t.stack();
    const broken = await call(stack, "sync-all", {
      method: "POST",
      headers: { ...serviceHeaders(stack), "content-type": "application/json" },
      body: '{"dry_run": tru',
    });
    assert.equal(broken.status, 400);
    assertErrorShape(broken.body, 400, "invalid_json");
    const invalid = await call(stack, "sync-all", {
      method: "POST",
      headers: serviceHeaders(stack),
      json: { dry_run: "yes", extra: 1 },
    });
    assert.equal(invalid.status, 400);
    assertErrorShape(invalid.body, 400, "invalid_input");
    const paths = invalid.body.error.details.map((d: { path: string; code: string }) =>
      d.path || d.code
    );
    assert.ok(paths.includes("dry_run"), JSON.stringify(invalid.body));
  },
});

Deno.test({
  ...integration,
  name: "401: no credentials, the anon key only, a bad or expired token, a wrong key",
  async fn() {
    const stack = await t.stack();
    const none = await call(stack, "sync-all");
    assert.equal(none.status, 401);
    assertErrorShape(none.body, 401, "unauthorized");
    const anon = await client(stack).functions.invoke("sync-all", { method: "GET" });
    assert.equal(anon.error?.context?.status, 401);
    assertErrorShape(await anon.error.context.json(), 401);
    const forged = await call(stack, "create-user", {
      method: "POST",
      headers: userHeaders(stack, stack.anonKey.replace(/\.[^.]+$/, ".AAAA")),
      json: { email: "x@example.test" },
    });
    assert.equal(forged.status, 401);
    const wrongKey = await call(stack, "sync-all", {
      headers: { apikey: "sb_secret_not_this_project" },
    });
    assert.equal(wrongKey.status, 401);
    assertErrorShape(wrongKey.body, 401, "invalid_credentials");
    // a real token of a real admin, re-signed as expired
    const admin = await signedInUser(stack, "admin");
    assert.equal(
      (await call(stack, "sync-all", { headers: userHeaders(stack, admin.accessToken) })).status,
      200,
    );
    const expired = await call(stack, "sync-all", {
      headers: userHeaders(stack, await expire(admin.accessToken, stack.jwtSecret)),
    });
    assert.equal(expired.status, 401);
    assertErrorShape(expired.body, 401, "invalid_token");
  },
});

/** The same claims, already expired, signed with the project's secret. */
async function expire(token: string, secret: string): Promise<string> {
  const { SignJWT } = await import("jose");
  const claims = decodeJwt(token);
  return await new SignJWT({ ...claims, exp: Math.floor(Date.now() / 1000) - 10 })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(new TextEncoder().encode(secret));
}

Deno.test({
  ...integration,
  name: "403 for an authenticated non-admin; admins and the secret key pass (supabase-js)",
  async fn() {
    const stack = await t.stack();
    const plain = await signedInUser(stack);
    const denied = await plain.client.functions.invoke("sync-all", { method: "GET" });
    assert.equal(denied.error?.context?.status, 403);
    assertErrorShape(await denied.error.context.json(), 403, "forbidden");
    const deniedCreate = await plain.client.functions.invoke("create-user", {
      body: { email: "x@example.test" },
    });
    assert.equal(deniedCreate.error?.context?.status, 403);

    const admin = await signedInUser(stack, "admin");
    const ok = await admin.client.functions.invoke("sync-all", { method: "GET" });
    assert.equal(ok.error, null);
    assert.equal(typeof ok.data.auth_users, "number");

    const service = await client(stack, "service").functions.invoke("sync-all", { method: "GET" });
    assert.equal(service.error, null);
    assert.ok(service.data.profiles >= 2);
  },
});

Deno.test({
  ...integration,
  name: "an admin demoted in public.users loses access at once, a promoted user gains it",
  async fn() {
    const stack = await t.stack();
    const db = t.db();
    const user = await signedInUser(stack, "admin");
    assert.equal(
      (await call(stack, "sync-all", { headers: userHeaders(stack, user.accessToken) })).status,
      200,
    );
    await db`update public.users set role = 'user' where id = ${user.id}`;
    assert.equal(
      (await call(stack, "sync-all", { headers: userHeaders(stack, user.accessToken) })).status,
      403,
    );
    await db`update public.users set role = 'admin' where id = ${user.id}`;
    assert.equal(
      (await call(stack, "sync-all", { headers: userHeaders(stack, user.accessToken) })).status,
      200,
    );
  },
});

Deno.test({
  ...integration,
  name: "user JWTs signed with ES256 are verified through Auth's JWKS",
  async fn() {
    const stack = await t.stack();
    const es = await startLocalStack({
      port: 0,
      jwtAlg: "ES256",
      functionEnv: { USER_SYNC_JWT_SECRET: undefined },
    });
    try {
      const admin = await signedInUser(es, "admin");
      assert.equal(JSON.parse(atob(admin.accessToken.split(".")[0])).alg, "ES256");
      const jwks = await (await fetch(`${es.url}/auth/v1/.well-known/jwks.json`)).json();
      assert.equal(jwks.keys.length, 1);
      const ok = await admin.client.functions.invoke("sync-all", { method: "GET" });
      assert.equal(ok.error, null);
      const plain = await signedInUser(es);
      const denied = await plain.client.functions.invoke("sync-all", { method: "GET" });
      assert.equal(denied.error?.context?.status, 403);
      // the same token is refused by a project with another key set
      const other = await call(stack, "sync-all", {
        headers: userHeaders(stack, admin.accessToken),
      });
      assert.equal(other.status, 401);
    } finally {
      await es.close();
    }
  },
});

Deno.test({
  ...integration,
  name: "without the JWT secret, HS256 tokens are checked by Auth (GET /auth/v1/user)",
  async fn() {
    const stack = await t.stack();
    const handler = createSyncAllHandler({
      env: { ...stack.functionEnv, USER_SYNC_JWT_SECRET: undefined },
    });
    try {
      const admin = await signedInUser(stack, "admin");
      const get = (token: string) =>
        handler(
          new Request(`${stack.url}/functions/v1/sync-all`, { headers: userHeaders(stack, token) }),
        );
      const ok = await get(admin.accessToken);
      assert.equal(ok.status, 200);
      await ok.body?.cancel();
      // the auth user is gone: Auth refuses the (still unexpired) token
      await client(stack, "service").auth.admin.deleteUser(admin.id);
      const gone = await get(admin.accessToken);
      assert.equal(gone.status, 401);
      assertErrorShape(await gone.json(), 401, "invalid_token");
    } finally {
      await handler.close();
    }
  },
});

Deno.test({
  ...integration,
  name: "503: database unreachable (closed port, wrong password), as JSON",
  async fn() {
    const stack = await t.stack();
    for (
      const dbUrl of [
        unreachableDbUrl(),
        withCredentials(localDbUrl(), "postgres", "wrong-password"),
      ]
    ) {
      const handler = createSyncAllHandler({
        env: { ...stack.functionEnv, SUPABASE_DB_URL: dbUrl },
      });
      try {
        const res = await handler(
          new Request("http://localhost/sync-all", { headers: serviceHeaders(stack) }),
        );
        assert.equal(res.status, 503);
        const body = await res.json();
        assertErrorShape(body, 503, "database_unavailable");
        assert.ok(!JSON.stringify(body).includes("wrong-password"));
        // an admin caller needs the database for the role check: also 503
        const admin = await signedInUser(stack, "admin");
        const viaAdmin = await handler(
          new Request("http://localhost/sync-all", {
            headers: userHeaders(stack, admin.accessToken),
          }),
        );
        assert.equal(viaAdmin.status, 503);
        await viaAdmin.body?.cancel();
      } finally {
        await handler.close();
      }
    }
  },
});

Deno.test({
  ...integration,
  name: "503: Auth unreachable (create-user's admin API, the token check without JWT secret)",
  async fn() {
    const stack = await t.stack();
    const deadAuth = `http://127.0.0.1:${closedPort()}`;
    const create = createCreateUserHandler({
      env: { ...stack.functionEnv, SUPABASE_URL: deadAuth },
    });
    const status = createSyncAllHandler({
      env: { ...stack.functionEnv, SUPABASE_URL: deadAuth, USER_SYNC_JWT_SECRET: undefined },
    });
    try {
      const res = await create(
        new Request("http://localhost/create-user", {
          method: "POST",
          headers: { ...serviceHeaders(stack), "content-type": "application/json" },
          body: JSON.stringify({ email: `dead-auth-${crypto.randomUUID()}@example.test` }),
        }),
      );
      assert.equal(res.status, 503);
      assertErrorShape(await res.json(), 503, "auth_unavailable");
      const user = await signedInUser(stack);
      const check = await status(
        new Request("http://localhost/sync-all", { headers: userHeaders(stack, user.accessToken) }),
      );
      assert.equal(check.status, 503);
      assertErrorShape(await check.json(), 503, "auth_unavailable");
    } finally {
      await create.close();
      await status.close();
    }
  },
});

Deno.test({
  ...integration,
  name: "logs of the whole run: JSON lines, one per request, no key, token or password",
  async fn() {
    const stack = await t.stack();
    try {
      const requests = (await import("./_helpers.ts")).logLines(undefined, "request");
      assert.ok(requests.length > 20);
      for (const r of requests) {
        assert.equal(typeof r.status, "number");
        assert.equal(typeof r.duration_ms, "number");
        assert.ok(["sync-all", "create-user", "auth-webhook"].includes(r.fn as string));
      }
      assertNoSecretsLogged(stack);
    } finally {
      await t.close();
    }
  },
});
