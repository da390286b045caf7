// Attacks, run the way an attacker would:
//  1. The RLS matrix through the Data API as PostgREST runs it: `authenticator`,
//     `set local role`, request.jwt.claims taken from real, verified access tokens
//     issued by Auth (the stand-in, through supabase-js). anon, a user against another
//     user, a user against their own role, inserts, deletes, upserts, auth-owned and
//     bookkeeping columns, every user_sync function and relation, Vault, auth.users,
//     creating objects, switching roles; soft-deleted users with still-valid tokens.
//     (supabase/tests/05-rls.test.sql covers the basic matrix in SQL.)
//     Hostile self-edits (bidi overrides, zero-width characters, separators, BOM,
//     blank or over-long names, avatar URLs with quotes or angle brackets) and a
//     security-definer RPC of the app trying to raise its caller's role.
//  2. Real JWT-bearing requests to the functions: users, self-promotion through
//     user_metadata and the Data API, tampered, re-signed, unsigned and
//     algorithm-confused tokens, tokens without exp or for another audience, soft-
//     and hard-deleted admins, admins demoted or banned in Auth (the decision reads
//     auth.users, never the mirror), a misconfigured function probed anonymously.
//  3. Webhook forgery on auth-webhook, with the function's clock under control: replay
//     inside and outside the 5-minute window, timestamp skew both ways, signatures
//     from other secrets (including every other key of the project), moved to another
//     body, id or timestamp, other versions, signature stuffing, oversized signed
//     bodies, deny-list evasion.
//  4. Secret comparisons are constant-time by construction (structural checks, no
//     timing): equal-length digests through crypto.timingSafeEqual, every key and
//     every signature compared, no early exit; no other comparison of a secret.
import fc from "fast-check";
import assert from "node:assert/strict";
import { jwtVerify, SignJWT } from "jose";
import { createAuthWebhookHandler } from "../../supabase/functions/auth-webhook/handler.ts";
import { createCreateUserHandler } from "../../supabase/functions/create-user/handler.ts";
import { createSyncAllHandler } from "../../supabase/functions/sync-all/handler.ts";
import { matchesAnyKey } from "../../supabase/functions/_shared/auth.ts";
import { MAX_BODY_BYTES } from "../../supabase/functions/_shared/http.ts";
import { signWebhook, verifyWebhook } from "../../supabase/functions/_shared/webhook_signature.ts";
import { connect } from "../_support/db.ts";
import type { LocalStack } from "../../platform/gateway.ts";
import {
  assertErrorShape,
  assertNoSecretsLogged,
  call,
  client,
  integration,
  signedHeaders,
  signedInUser,
  testStack,
  type TestUser,
  userHeaders,
} from "../functions/_helpers.ts";
import { adminDb, figures, fingerprint, type Sql } from "./_shared.ts";

const t = testStack();
const tally = { rls_attempts: 0, function_attempts: 0, forgeries: 0, structural_checks: 0 };

// ---------------------------------------------------------------------------
// The Data API, as PostgREST runs a request
// ---------------------------------------------------------------------------
let dataApi: Sql | undefined;
const lit = (s: string) => `'${s.replaceAll("'", "''")}'`;

/** One Data API request: its own transaction, role and verified claims, one statement. */
async function asRole(
  role: "anon" | "authenticated",
  claims: Record<string, unknown>,
  statement: string,
): Promise<
  { rows: Record<string, unknown>[]; code?: undefined } | { rows?: undefined; code: string }
> {
  dataApi ??= connect("authenticator", { max: 2, app: "user-sync-attacks-data-api" });
  try {
    const res = await dataApi.unsafe(
      `set local role ${role};
       select set_config('request.jwt.claims', ${lit(JSON.stringify(claims))}, true);
       ${statement}`,
    ) as unknown as Record<string, unknown>[][];
    return { rows: [...res[2]] };
  } catch (err) {
    return { code: (err as { code?: string }).code ?? "?" };
  }
}

/** PostgREST verifies the token, then the claims become request.jwt.claims. */
async function claimsOf(stack: LocalStack, token: string): Promise<Record<string, unknown>> {
  const { payload } = await jwtVerify(token, new TextEncoder().encode(stack.jwtSecret));
  return payload as Record<string, unknown>;
}

const DENIED = "42501";

Deno.test({
  ...integration,
  name:
    "RLS as an attacker through the Data API (real verified tokens): every forbidden read, write and call, every hostile self-edit is refused, nothing is written",
  async fn() {
    const stack = await t.stack();
    const sql = adminDb(2);
    const service = client(stack, "service");
    const users: TestUser[] = [];
    try {
      const alice = await signedInUser(stack);
      const bob = await signedInUser(stack);
      const carol = await signedInUser(stack, "admin");
      const dave = await signedInUser(stack);
      users.push(alice, bob, carol, dave);
      // dave is soft-deleted; his access token is still valid until it expires
      assert.equal((await service.auth.admin.deleteUser(dave.id, true)).error, null);
      const A = await claimsOf(stack, alice.accessToken);
      const C = await claimsOf(stack, carol.accessToken);
      const D = await claimsOf(stack, dave.accessToken);
      const anon = await claimsOf(stack, stack.anonKey);
      assert.equal(A.sub, alice.id);
      const id = (u: TestUser) => lit(u.id);

      const sensitive = [
        `select user_sync.sync_user(${id(bob)})`,
        "select user_sync.reconcile()",
        "select user_sync.reconcile(true, 'manual')",
        "select user_sync.status()",
        `select user_sync.record_error(${id(bob)}, 'trigger', '0', 'forged', null, null)`,
        `select user_sync.resolve_errors(${id(bob)})`,
        `select user_sync.auth_role(${id(carol)})`,
        "select user_sync.vault_secret('user_sync_secret_key')",
        "select * from user_sync.runs",
        "select * from user_sync.errors",
        "select * from user_sync.config",
        `select user_sync.expected_profile(${id(bob)})`,
        `select user_sync.profile_state(${id(bob)})`,
        "select user_sync.compile_field_rules()",
        "update user_sync.config set default_role = 'admin'",
        "insert into user_sync.roles (role) values ('root')",
        "select * from vault.decrypted_secrets",
        "select * from vault.secrets",
        "select * from auth.users",
        `update auth.users set raw_app_meta_data = '{"role": "admin"}' where id = ${id(alice)}`,
        "select * from auth.identities",
        "create table public.evil (id int)",
        "create function public.lower(text) returns text language sql as 'select ''x'''",
        "create schema evil",
        // (`set role service_role` works for any PostgREST session: authenticator is a
        // member of every API role by design, and clients never send SQL. pg_net's
        // http_post is granted to the API roles by the platform, not by User Sync.)
        "set role postgres",
        "set role supabase_auth_admin",
        "select cron.schedule('evil', '* * * * *', 'select 1')",
      ];
      const matrix: {
        who: string;
        role: "anon" | "authenticated";
        claims: Record<string, unknown>;
        sql: string;
      }[] = [];
      for (const s of sensitive) {
        matrix.push({ who: "anon", role: "anon", claims: anon, sql: s });
        matrix.push({ who: "alice", role: "authenticated", claims: A, sql: s });
        matrix.push({ who: "carol (admin)", role: "authenticated", claims: C, sql: s });
      }
      const deny = (
        who: string,
        role: "anon" | "authenticated",
        claims: Record<string, unknown>,
        statement: string,
      ) => matrix.push({ who, role, claims, sql: statement });
      // anyone, against public.users
      deny("anon", "anon", anon, "select * from public.users");
      deny("anon", "anon", anon, "update public.users set name = 'x'");
      deny("anon", "anon", anon, "delete from public.users");
      deny(
        "anon",
        "anon",
        anon,
        `insert into public.users (id) values (${lit(crypto.randomUUID())})`,
      );
      // alice against her own row: the role, auth-owned and bookkeeping columns
      deny(
        "alice",
        "authenticated",
        A,
        `update public.users set role = 'admin' where id = ${id(alice)}`,
      );
      deny(
        "alice",
        "authenticated",
        A,
        `update public.users set role = 'admin', name = 'Sneaky' where id = ${id(alice)}`,
      );
      for (
        const c of [
          "email",
          "phone",
          "provider",
          "deleted_at",
          "synced_at",
          "updated_at",
          "created_at",
          "is_anonymous",
          "email_confirmed_at",
          "last_sign_in_at",
        ]
      ) {
        deny(
          "alice",
          "authenticated",
          A,
          `update public.users set ${c} = null where id = ${id(alice)}`,
        );
      }
      // The edit markers may only be cleared (followMetadata, issue 13), never set: a set
      // marker would freeze the field against sync.
      for (const c of ["name_edited_at", "avatar_url_edited_at"]) {
        deny(
          "alice",
          "authenticated",
          A,
          `update public.users set ${c} = now() + interval '100 years' where id = ${id(alice)}`,
        );
      }
      deny(
        "alice",
        "authenticated",
        A,
        `update public.users set providers = '{admin}' where id = ${id(alice)}`,
      );
      deny(
        "alice",
        "authenticated",
        A,
        `update public.users set id = ${id(bob)} where id = ${id(alice)}`,
      );
      deny("alice", "authenticated", A, `delete from public.users where id = ${id(alice)}`);
      deny(
        "alice",
        "authenticated",
        A,
        `insert into public.users (id, email) values (${
          lit(crypto.randomUUID())
        }, 'x@example.test')`,
      );
      deny(
        "alice",
        "authenticated",
        A,
        `insert into public.users (id, role) values (${
          id(alice)
        }, 'admin') on conflict (id) do update set role = 'admin'`,
      );
      // alice against bob
      deny("alice", "authenticated", A, `delete from public.users where id = ${id(bob)}`);
      // carol, an admin, still cannot touch what Auth owns or the profiles' lifecycle
      deny(
        "carol (admin)",
        "authenticated",
        C,
        `update public.users set email = 'x@example.test' where id = ${id(bob)}`,
      );
      deny("carol (admin)", "authenticated", C, `delete from public.users where id = ${id(bob)}`);
      deny(
        "carol (admin)",
        "authenticated",
        C,
        `insert into public.users (id) values (${lit(crypto.randomUUID())})`,
      );
      deny(
        "carol (admin)",
        "authenticated",
        C,
        `update public.users set role = 'overlord' where id = ${id(bob)}`,
      );

      // hostile self-edits: refused by a named check (23514), nothing written
      const hostile: string[] = [
        ...[
          "Admin\u202e", "a\u202ab", "a\u2066b", "zero\u200bwidth", "rlm\u200f", "wj\u2060",
          "line\u2028sep", "para\u2029sep", "\ufeffBOM", "bell\u0007", "c1\u0085", "   ",
          " lead", "trail\u00a0", "x".repeat(201),
        ].map((n) => `update public.users set name = ${lit(n)} where id = ${id(alice)}`),
        ...[
          'https://x.example/a.png"onerror="alert(1)',
          "https://x.example/a.png'",
          "https://x.example/<script>",
          "javascript:alert(1)",
          "https://x.example/a b",
        ].map((u) => `update public.users set avatar_url = ${lit(u)} where id = ${id(alice)}`),
      ];
      const before = await fingerprint(sql);
      const acceptedHostile: string[] = [];
      for (const statement of hostile) {
        tally.rls_attempts++;
        const r = await asRole("authenticated", A, statement);
        if (r.code !== "23514") acceptedHostile.push(`${statement} -> ${r.code ?? "accepted"}`);
      }
      assert.deepEqual(acceptedHostile, [], "every hostile self-edit is refused by a named check");
      const allowed: string[] = [];
      for (const m of matrix) {
        tally.rls_attempts++;
        const r = await asRole(m.role, m.claims, m.sql);
        if (r.code === undefined) {
          allowed.push(`${m.who}: ${m.sql} -> ${JSON.stringify(r.rows).slice(0, 100)}`);
        } else if (r.code !== DENIED && r.code !== "23503") {
          allowed.push(`${m.who}: ${m.sql} -> ${r.code}`);
        }
      }
      assert.deepEqual(allowed, [], "every attempt is refused (42501; an unknown role is a 23503)");

      // Attempts that "succeed" silently must affect nothing.
      const zeroRows: [string, Record<string, unknown>, string][] = [
        ["alice reads bob", A, `select * from public.users where id = ${id(bob)}`],
        [
          "alice edits bob",
          A,
          `update public.users set name = 'Hacked' where id = ${id(bob)} returning id`,
        ],
        [
          "alice demotes carol",
          A,
          `update public.users set role = 'user' where id = ${id(carol)} returning id`,
        ],
        [
          "alice edits everyone",
          A,
          `update public.users set avatar_url = 'https://evil.example/x.png' where id <> ${
            id(alice)
          } returning id`,
        ],
        ["alice with admin-looking claims reads others", {
          ...A,
          user_role: "admin",
          app_metadata: { role: "admin" },
        }, `select * from public.users where id <> ${id(alice)}`],
        [
          "alice with service_role in the claims reads others",
          { ...A, role: "service_role" },
          `select * from public.users where id <> ${id(alice)}`,
        ],
        [
          "alice claims bob's sub in a forged token would need the JWT secret; with hers",
          A,
          `update public.users set name = 'x' where id = ${id(bob)} returning id`,
        ],
        [
          "dave (soft-deleted) reads himself",
          D,
          `select * from public.users where id = ${id(dave)}`,
        ],
        [
          "dave (soft-deleted) edits himself",
          D,
          `update public.users set name = 'Back' where id = ${id(dave)} returning id`,
        ],
      ];
      for (const [what, claims, s] of zeroRows) {
        tally.rls_attempts++;
        const r = await asRole("authenticated", claims, s);
        assert.equal(r.code, undefined, `${what}: ${r.code}`);
        assert.equal(r.rows!.length, 0, `${what}: no row`);
      }
      // What is granted answers only what it should.
      const own = await asRole("authenticated", A, "select id from public.users");
      assert.deepEqual(
        own.rows!.map((r) => r.id),
        [alice.id],
        "a user reads exactly their own row",
      );
      const isAdmin = await asRole("authenticated", A, "select user_sync.is_admin() as a");
      assert.equal(isAdmin.rows![0].a, false);
      const carolIsAdmin = await asRole("authenticated", C, "select user_sync.is_admin() as a");
      assert.equal(carolIsAdmin.rows![0].a, true, "is_admin() answers about the caller only");
      tally.rls_attempts += 3;
      assert.deepEqual(await fingerprint(sql), before, "no attempt wrote anything");

      // Bob's row is exactly as before; alice is still a plain user.
      const [b] = await sql`select name, role, avatar_url from public.users where id = ${bob.id}`;
      assert.equal(b.role, "user");
      assert.notEqual(b.name, "Hacked");
      const [a] = await sql`select role from public.users where id = ${alice.id}`;
      assert.equal(a.role, "user");
      assertNoSecretsLogged(stack);
    } finally {
      await sql`delete from auth.users where id in ${
        sql(users.map((u) => u.id).concat(crypto.randomUUID()))
      }`;
      await sql.end();
    }
  },
});

// ---------------------------------------------------------------------------
// 2. Real JWT-bearing requests to the functions
// ---------------------------------------------------------------------------
function b64urlJson(v: unknown): string {
  return btoa(JSON.stringify(v)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
function payloadOf(token: string): Record<string, unknown> {
  const p = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(p + "=".repeat((4 - (p.length % 4)) % 4)));
}

Deno.test({
  ...integration,
  name:
    "functions with real and doctored user tokens: users, self-promotion, tampered/re-signed/unsigned tokens, tokens without exp or for another audience, deleted, demoted and banned admins never pass",
  async fn() {
    const stack = await t.stack();
    const sql = adminDb(1);
    const service = client(stack, "service");
    const users: TestUser[] = [];
    const attempts: { what: string; fn: string; status: number }[] = [];
    const attempt = async (what: string, token: string, expect: number) => {
      for (
        const [fn, init] of [
          ["sync-all", { method: "GET" }],
          ["sync-all", { method: "POST", json: { dry_run: true } }],
          ["create-user", {
            method: "POST",
            json: { email: `attack-${crypto.randomUUID()}@example.test` },
          }],
          ["auth-webhook", {
            method: "POST",
            json: {
              type: "DELETE",
              table: "users",
              schema: "auth",
              old_record: { id: users[1]?.id ?? crypto.randomUUID() },
            },
          }],
        ] as const
      ) {
        tally.function_attempts++;
        const res = await call(stack, fn, { ...init, headers: userHeaders(stack, token) });
        attempts.push({ what, fn, status: res.status });
        assert.equal(
          res.status,
          expect,
          `${what} -> ${fn} ${init.method}: ${JSON.stringify(res.body)}`,
        );
        assertErrorShape(res.body, expect);
      }
    };
    try {
      const alice = await signedInUser(stack);
      const bob = await signedInUser(stack);
      const carol = await signedInUser(stack, "admin");
      const erin = await signedInUser(stack, "admin");
      const frank = await signedInUser(stack, "admin");
      users.push(alice, bob, carol, erin, frank);
      const [{ last }] = await sql`select coalesce(max(id), 0)::int as last from user_sync.runs`;

      await attempt("a plain user", alice.accessToken, 403);

      // Self-promotion through user_metadata (which the user controls) and a refresh.
      assert.equal(
        (await alice.client.auth.updateUser({ data: { role: "admin", user_role: "admin" } })).error,
        null,
      );
      const refreshed = await alice.client.auth.refreshSession();
      assert.equal(refreshed.error, null);
      const token2 = refreshed.data.session!.access_token;
      assert.equal(
        payloadOf(token2).user_role,
        "user",
        "the access-token hook adds the profile role, not the claim",
      );
      await attempt("a user who set role: admin in user_metadata", token2, 403);
      // ... and through the Data API
      const promote = await asRole(
        "authenticated",
        await claimsOf(stack, token2),
        `update public.users set role = 'admin' where id = ${lit(alice.id)}`,
      );
      assert.equal(promote.code, DENIED);
      await attempt("after trying to promote herself", token2, 403);

      // Doctored tokens.
      const [h, , sig] = alice.accessToken.split(".");
      const claims = { ...payloadOf(alice.accessToken), role: "service_role", user_role: "admin" };
      const now = Math.floor(Date.now() / 1000);
      await attempt("payload changed, signature kept", `${h}.${b64urlJson(claims)}.${sig}`, 401);
      await attempt(
        "re-signed with another secret",
        await new SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(
          new TextEncoder().encode("not-the-project-secret-but-32-chars-long"),
        ),
        401,
      );
      await attempt(
        "unsigned (alg none)",
        `${b64urlJson({ alg: "none", typ: "JWT" })}.${b64urlJson(claims)}.`,
        401,
      );
      await attempt(
        "alg HS512",
        `${b64urlJson({ alg: "HS512", typ: "JWT" })}.${b64urlJson(claims)}.${sig}`,
        401,
      );
      await attempt(
        "alg ES256 with a made-up kid",
        `${b64urlJson({ alg: "ES256", kid: "attacker" })}.${b64urlJson(claims)}.${sig}`,
        401,
      );
      await attempt(
        "the anon key's signature on service_role claims",
        `${stack.anonKey.split(".")[0]}.${
          b64urlJson({ iss: "supabase-demo", role: "service_role", exp: now + 3600 })
        }.${stack.anonKey.split(".")[2]}`,
        401,
      );

      // Admins pass...
      const ok = await call(stack, "sync-all", { headers: userHeaders(stack, carol.accessToken) });
      assert.equal(ok.status, 200);
      // ... until soft-deleted (their token is still valid), hard-deleted, or demoted.
      assert.equal((await service.auth.admin.deleteUser(carol.id, true)).error, null);
      await attempt("a soft-deleted admin's unexpired token", carol.accessToken, 403);
      assert.equal((await service.auth.admin.deleteUser(erin.id)).error, null);
      await attempt("a hard-deleted admin's unexpired token", erin.accessToken, 403);
      const demote = await asRole(
        "authenticated",
        await claimsOf(stack, frank.accessToken),
        `update public.users set role = 'user' where id = ${lit(frank.id)} returning role`,
      );
      assert.deepEqual(demote.rows, [{ role: "user" }], "an admin may demote themself");
      await attempt("a demoted admin's token", frank.accessToken, 403);

      // Demoted or banned in Auth itself (the mirror may lag; the decision reads auth.users)
      const gina = await signedInUser(stack, "admin");
      const hank = await signedInUser(stack, "admin");
      const ivy = await signedInUser(stack, "admin");
      users.push(gina, hank, ivy);
      assert.equal(
        (await service.auth.admin.updateUserById(gina.id, { app_metadata: { role: "user" } })).error,
        null,
      );
      await attempt("an admin demoted in Auth (admin API), unexpired token", gina.accessToken, 403);
      assert.equal(
        (await service.auth.admin.updateUserById(hank.id, { ban_duration: "24h" })).error,
        null,
      );
      await attempt("a banned admin's unexpired token", hank.accessToken, 403);
      // An admin's claims signed with the project's own secret, but without exp or for
      // another audience (a careless server minting tokens): never a user caller.
      const secret = new TextEncoder().encode(stack.jwtSecret);
      const { exp: _exp, ...forever } = payloadOf(ivy.accessToken);
      await attempt(
        "an admin's claims without exp",
        await new SignJWT(forever).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(secret),
        401,
      );
      await attempt(
        "an admin's claims for another audience",
        await new SignJWT({ ...payloadOf(ivy.accessToken), aud: "anon" })
          .setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(secret),
        401,
      );
      const ivyOk = await call(stack, "sync-all", { headers: userHeaders(stack, ivy.accessToken) });
      assert.equal(ivyOk.status, 200, "the same admin's real token passes");

      // Nothing was created or synced by any refused call (the deletes and the
      // demotion above were ours; compare only what the calls could have written).
      const [{ n }] =
        await sql`select count(*)::int as n from auth.users where email like 'attack-%'`;
      assert.equal(n, 0, "no refused create-user created anyone");
      const [{ runs }] =
        await sql`select count(*)::int as runs from user_sync.runs where id > ${last}`;
      assert.equal(runs, 0, "no refused sync-all ran a reconcile");
      figures("attacks: tokens against the functions", {
        attempts: attempts.length,
        refused: attempts.length,
      });
    } finally {
      await sql`delete from auth.users where id in ${
        sql(users.map((u) => u.id).concat(crypto.randomUUID()))
      }`;
      await sql.end();
    }
  },
});

Deno.test("a misconfigured function tells an anonymous caller nothing about its configuration", async () => {
  for (const create of [createAuthWebhookHandler, createSyncAllHandler, createCreateUserHandler]) {
    // only the project URL: no database URL, no keys
    const handler = create({ env: { SUPABASE_URL: "http://127.0.0.1:1" } });
    try {
      for (const init of [{ method: "GET" }, { method: "POST", body: "{}" }]) {
        tally.function_attempts++;
        const res = await handler(
          new Request("http://x/", { ...init, headers: { "content-type": "application/json" } }),
        );
        const text = await res.text();
        if (res.status === 405) continue;
        assert.equal(res.status, 503);
        assertErrorShape(JSON.parse(text), 503, "misconfigured");
        assert.doesNotMatch(text, /SUPABASE_|USER_SYNC_|variable/i);
      }
    } finally {
      await handler.close();
    }
  }
});

// ---------------------------------------------------------------------------
// 3. Webhook forgery, with the function's clock under control
// ---------------------------------------------------------------------------
function beforeUserCreated(email: string) {
  return {
    metadata: {
      uuid: crypto.randomUUID(),
      time: new Date().toISOString(),
      name: "before-user-created",
      ip_address: "203.0.113.7",
    },
    user: {
      id: crypto.randomUUID(),
      aud: "authenticated",
      role: "authenticated",
      email,
      phone: "",
      app_metadata: { provider: "email", providers: ["email"] },
      user_metadata: {},
      identities: [],
      is_anonymous: false,
    },
  };
}

Deno.test({
  ...integration,
  name:
    "webhook forgery: replays, timestamp skew, foreign secrets, moved signatures, other versions, stuffing, oversized bodies, deny-list evasion",
  async fn() {
    const stack = await t.stack();
    const sql = adminDb(1);
    let clock = Date.now();
    const handler = createAuthWebhookHandler({
      env: { ...stack.functionEnv, USER_SYNC_DENIED_EMAIL_DOMAINS: "evil.test" },
      now: () => clock,
    });
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
    const url = `http://127.0.0.1:${server.addr.port}/functions/v1/auth-webhook`;
    const post = async (headers: Record<string, string>, body: string) => {
      tally.forgeries++;
      const res = await fetch(url, { method: "POST", headers, body });
      const text = await res.text();
      return { status: res.status, body: JSON.parse(text) };
    };
    const expect401 = async (what: string, headers: Record<string, string>, body: string) => {
      const r = await post(headers, body);
      assert.equal(r.status, 401, `${what}: ${JSON.stringify(r.body)}`);
      assertErrorShape(r.body, 401, "invalid_signature");
      return r.body.error.details?.reason as string;
    };
    try {
      const before = await fingerprint(sql);
      const T = Math.floor(clock / 1000);
      const body = JSON.stringify(beforeUserCreated("someone@good.test"));
      const signed = signedHeaders(stack.hookSecret, body, { timestamp: T });

      // A genuine delivery, then the same bytes replayed.
      assert.equal((await post(signed, body)).status, 200);
      clock = T * 1000 + 299_000;
      const replayInside = await post(signed, body);
      assert.equal(
        replayInside.status,
        200,
        "inside the 5-minute window a replay is the same harmless answer",
      );
      assert.deepEqual(replayInside.body, {});
      clock = T * 1000 + 301_000;
      assert.equal(await expect401("replayed after 5 minutes", signed, body), "stale_timestamp");
      clock = T * 1000;

      // Timestamp skew: Auth's clock ahead of ours.
      const ahead = (s: number) => signedHeaders(stack.hookSecret, body, { timestamp: T + s });
      assert.equal((await post(ahead(299), body)).status, 200);
      assert.equal(await expect401("timestamp 301 s ahead", ahead(301), body), "future_timestamp");
      assert.equal(
        await expect401("timestamp far in the future", ahead(10 ** 9), body),
        "future_timestamp",
      );
      for (const ts of ["-1", "1e9", "0x10", " ", "1614265330.5", "9".repeat(13)]) {
        await expect401(`timestamp ${ts}`, { ...signed, "webhook-timestamp": ts }, body);
      }

      // Signatures made with anything but the hook secret.
      const others = [
        "v1,whsec_" + btoa("attacker-chosen-secret-0000000000"),
        `v1,whsec_${btoa(stack.jwtSecret)}`,
        `v1,whsec_${btoa(stack.serviceRoleKey)}`,
        `v1,whsec_${btoa(stack.anonKey)}`,
        `v1,whsec_${btoa("")}AA==`,
      ];
      for (const secret of others) {
        await expect401(
          "signed with another secret",
          signedHeaders(secret, body, { timestamp: T }),
          body,
        );
      }

      // A genuine signature moved onto something else.
      const evil = body.replace("someone@good.test", "mallory@evil.test");
      assert.equal(
        await expect401("body swapped (deny-list bypass)", signed, evil),
        "no_matching_signature",
      );
      await expect401(
        "id swapped",
        { ...signed, "webhook-id": `msg_${crypto.randomUUID()}` },
        body,
      );
      await expect401(
        "timestamp refreshed",
        { ...signed, "webhook-timestamp": String(T + 1) },
        body,
      );
      await expect401("whitespace added to the body", signed, `${body} `);
      const sigOnly = signed["webhook-signature"].slice(3);
      for (
        const v of [
          `v2,${sigOnly}`,
          `v0,${sigOnly}`,
          `V1,${sigOnly}`,
          sigOnly,
          `v1a,${sigOnly}`,
          `v1,${sigOnly.slice(0, -2)}`,
        ]
      ) {
        await expect401(`signature version/format ${v.slice(0, 4)}`, {
          ...signed,
          "webhook-signature": v,
        }, body);
      }
      // Stuffing: a thousand wrong signatures in one header.
      const junk = Array.from(
        { length: 1000 },
        () => `v1,${btoa(crypto.randomUUID() + crypto.randomUUID()).slice(0, 43)}=`,
      );
      await expect401(
        "1,000 wrong signatures",
        { ...signed, "webhook-signature": junk.join(" ") },
        body,
      );

      // Oversized: a correctly signed body over 1 MiB is refused before anything else.
      const big = JSON.stringify({
        ...beforeUserCreated("big@good.test"),
        pad: "x".repeat(MAX_BODY_BYTES),
      });
      const bigRes = await post(signedHeaders(stack.hookSecret, big, { timestamp: T }), big);
      assert.equal(bigRes.status, 413);
      assertErrorShape(bigRes.body, 413, "payload_too_large");

      // A Database Webhook payload signed as a hook syncs nothing.
      const dbw = JSON.stringify({
        type: "DELETE",
        table: "users",
        schema: "auth",
        old_record: { id: crypto.randomUUID() },
      });
      const dbwRes = await post(signedHeaders(stack.hookSecret, dbw, { timestamp: T }), dbw);
      assert.equal(dbwRes.status, 400);

      // Deny-list evasion: case, trailing dot, subdomains, padding.
      for (
        const email of [
          "m@EVIL.TEST",
          "m@evil.test.",
          "m@sub.evil.test",
          "m@Sub.Evil.Test.",
          " m@evil.test ",
          "m@good.test@evil.test",
        ]
      ) {
        const b = JSON.stringify(beforeUserCreated(email));
        const r = await post(signedHeaders(stack.hookSecret, b, { timestamp: T }), b);
        assert.equal(r.status, 200);
        assert.equal(
          r.body.error?.http_code,
          403,
          `${email} is refused: ${JSON.stringify(r.body)}`,
        );
      }
      assert.deepEqual(await fingerprint(sql), before, "no forged request wrote anything");
    } finally {
      await server.shutdown();
      await handler.close();
      await sql.end();
    }
  },
});

// ---------------------------------------------------------------------------
// 4. Constant-time comparisons, by construction
// ---------------------------------------------------------------------------
const FUNCTIONS_DIR = new URL("../../supabase/functions/", import.meta.url);

/** The source text of a top-level function in a file. */
async function functionSource(file: string, name: string): Promise<string> {
  const text = await Deno.readTextFile(new URL(file, FUNCTIONS_DIR));
  const start = text.search(new RegExp(`function ${name}\\b`));
  assert.ok(start >= 0, `${name} is in ${file}`);
  let depth = 0;
  for (let i = text.indexOf("{", text.indexOf(")", start)); i < text.length; i++) {
    if (text[i] === "{") depth++;
    if (text[i] === "}" && --depth === 0) return text.slice(start, i + 1);
  }
  throw new Error(`unbalanced ${name}`);
}

/** An array that records which elements were read. */
function watched<T>(items: T[]): { proxy: T[]; read: Set<number> } {
  const read = new Set<number>();
  const proxy = new Proxy(items, {
    get(target, prop, receiver) {
      if (typeof prop === "string" && /^\d+$/.test(prop)) read.add(Number(prop));
      return Reflect.get(target, prop, receiver);
    },
  });
  return { proxy, read };
}

Deno.test("secret keys are compared in constant time: sha256 digests through timingSafeEqual, every key, no early exit", async () => {
  const src = await functionSource("_shared/auth.ts", "matchesAnyKey");
  const digest = await functionSource("_shared/auth.ts", "digest");
  tally.structural_checks++;
  assert.match(digest, /createHash\("sha256"\)/, "both sides are hashed to 32 bytes");
  assert.match(
    src,
    /timingSafeEqual\(\s*c\s*,\s*digest\(key\)\s*\)/,
    "digests compared with crypto.timingSafeEqual",
  );
  assert.match(src, /for \(const key of keys\)/, "a loop over every key");
  assert.doesNotMatch(
    src,
    /\bbreak\b|\breturn\s+true\b|\.some\(|\.find\(|\.includes\(|\.indexOf\(|===|!==|==(?!=)/,
    "no early exit, no plain comparison",
  );
  // Behaviour: a match on the first key still reads every key.
  for (const n of [1, 2, 5]) {
    const keys = Array.from({ length: n }, (_, i) => `sb_secret_${i}_${crypto.randomUUID()}`);
    for (const candidate of [keys[0], keys[n - 1], "wrong", ""]) {
      const { proxy, read } = watched(keys);
      matchesAnyKey(candidate, proxy);
      assert.equal(read.size, n, `all ${n} keys compared for candidate ${candidate.slice(0, 12)}`);
    }
  }
});

Deno.test("hook signatures are compared in constant time: timingSafeEqual on equal-length values, every secret and signature, no early exit", async () => {
  const verify = await functionSource("_shared/webhook_signature.ts", "verifyWebhook");
  const same = await functionSource("_shared/webhook_signature.ts", "sameBytes");
  tally.structural_checks++;
  assert.match(same, /timingSafeEqual\(x, y\)/);
  // The only short cut is on the length, which is public: every expected signature is
  // base64 of a 32-byte HMAC-SHA256 (property below).
  assert.match(same, /x\.byteLength === y\.byteLength && timingSafeEqual/);
  assert.match(verify, /for \(const secret of secrets\)/);
  assert.match(
    verify,
    /for \(const sig of passed\) if \(sameBytes\(sig, expected\)\) matched = true;/,
  );
  const loops = verify.slice(
    verify.indexOf("for (const secret of secrets)"),
    verify.indexOf("if (!matched)"),
  );
  assert.doesNotMatch(
    loops,
    /\bbreak\b|\breturn\b|\.some\(|\.find\(|===|!==/,
    "no early exit while comparing",
  );
  fc.assert(
    fc.property(
      fc.string(),
      fc.string({ maxLength: 64 }),
      fc.integer({ min: 0, max: 2 ** 40 }),
      fc.string(),
      (secret, id, ts, body) => {
        const sig = signWebhook(`whsec_${btoa(secret || "x")}`, id, ts, body);
        return /^v1,[A-Za-z0-9+/]{43}=$/.test(sig);
      },
    ),
    { numRuns: 200 },
  );
  // Behaviour: every configured secret is tried even when the first one matches.
  const secrets = [
    "whsec_" + btoa("first-secret-000000000000000000"),
    "whsec_" + btoa("second-secret-00000000000000000"),
    "whsec_" + btoa("third-secret-000000000000000000"),
  ];
  const body = "{}";
  const ts = Math.floor(Date.now() / 1000);
  const headers = new Headers({
    "webhook-id": "msg_1",
    "webhook-timestamp": String(ts),
    "webhook-signature": signWebhook(secrets[0], "msg_1", ts, body),
  });
  const { proxy, read } = watched(secrets);
  verifyWebhook(body, headers, proxy, ts * 1000);
  assert.equal(read.size, secrets.length, "every secret was tried");
});

Deno.test("no other code path compares a secret: every use of a key or secret in the functions is a hash, an HMAC or a presence check", async () => {
  const secretNames =
    /\b(secretKeys|hookSecrets|jwtSecret|authAdminKey|SUPABASE_SERVICE_ROLE_KEY|SUPABASE_SECRET_KEYS|USER_SYNC_HOOK_SECRET|USER_SYNC_JWT_SECRET|SUPABASE_JWT_SECRET)\b/;
  const comparison =
    /===|!==|[^=!<>]==[^=]|!=[^=]|\.includes\(|\.indexOf\(|\.startsWith\(|\.endsWith\(|\.localeCompare\(|\.has\(/;
  const offenders: string[] = [];
  let lines = 0;
  for await (const file of walk(FUNCTIONS_DIR)) {
    const text = await Deno.readTextFile(file);
    text.split("\n").forEach((line, i) => {
      if (/^\s*(\/\/|\*)/.test(line) || !secretNames.test(line)) return;
      lines++;
      const withoutLengthCheck = line.replace(/\.length === 0/g, "");
      if (comparison.test(withoutLengthCheck)) {
        offenders.push(`${file.pathname.split("/functions/")[1]}:${i + 1}: ${line.trim()}`);
      }
    });
  }
  tally.structural_checks++;
  assert.ok(lines > 10, "the scan saw the code that handles keys");
  assert.deepEqual(offenders, []);
});

async function* walk(dir: URL): AsyncGenerator<URL> {
  for await (const e of Deno.readDir(dir)) {
    const u = new URL(e.name + (e.isDirectory ? "/" : ""), dir);
    if (e.isDirectory) yield* walk(u);
    else if (e.name.endsWith(".ts")) yield u;
  }
}

Deno.test({
  ...integration,
  name: "attack runs log no key, token or password",
  async fn() {
    const stack = await t.stack();
    try {
      assertNoSecretsLogged(stack);
      figures("attacks", tally);
    } finally {
      await dataApi?.end();
      await t.close();
    }
  },
});
