// Hostile input, property-based (fast-check), over real HTTP against the three
// functions: random methods, paths, query strings, headers (content types, garbage
// and near-miss credentials, forged JWTs, webhook headers), bodies of random JSON
// shapes, wrong types, unicode, invalid UTF-8, deep nesting and sizes up to 2 MiB,
// streamed or not; and raw HTTP/1.1 framing over a socket. For every request:
//   - never a 5xx (bad input is the caller's problem, answered 4xx);
//   - the answer is JSON, errors in the one error shape;
//   - no stack trace, internals or configured secret in the answer;
//   - 2xx only for valid, authorized input, and no write at all otherwise (a
//     fingerprint of every table a request could write, before and after).
// USER_SYNC_PROPERTY_RUNS raises the number of cases (default 100 per property).
//
// Stand-in limits (platform/auth_standin.ts is not the real Auth server): a
// valid create-user body reaches Supabase Auth, so its password never contains U+0000
// and its user_metadata nests at most 1,000 levels — the real Auth (Go) accepts the
// former and refuses nesting over 10,000 levels itself with a 400; the stand-in's
// pgcrypto and JavaScript would fail instead. Everything refused before Auth gets
// the full range (deep nesting up to the 1 MiB limit, U+0000 anywhere, lone
// surrogates).
import fc from "fast-check";
import assert from "node:assert/strict";
import { SignJWT } from "jose";
import {
  BeforeUserCreatedPayload,
  CustomAccessTokenPayload,
  DatabaseWebhookPayload,
} from "../../supabase/functions/auth-webhook/handler.ts";
import { MAX_BODY_BYTES } from "../../supabase/functions/_shared/http.ts";
import type { LocalStack } from "../../platform/gateway.ts";
import {
  assertNoSecretsLogged,
  integration,
  signedHeaders,
  testStack,
} from "../functions/_helpers.ts";
import {
  adminDb,
  assertNoInternals,
  figures,
  fingerprint,
  PROPERTY_RUNS,
  type Sql,
} from "./_shared.ts";

const t = testStack();
const FUNCTIONS = ["sync-all", "create-user", "auth-webhook"] as const;
type Fn = typeof FUNCTIONS[number];
const DOMAIN = "hostile.example.test";
const cases: Record<string, number> = {};
const statuses: Record<string, Record<number, number>> = {};
const createdIds = new Set<string>();

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------
interface Hostile {
  method: string;
  path: string;
  headers: [string, string][];
  body: string | Uint8Array | { stream: Uint8Array } | null;
}

interface Answer {
  status: number;
  text: string;
  headers: Headers;
  // deno-lint-ignore no-explicit-any -- JSON of any shape
  json: any;
}

async function send(stack: LocalStack, r: Hostile): Promise<Answer> {
  let body: BodyInit | null = null;
  if (r.body instanceof Uint8Array) body = r.body as Uint8Array<ArrayBuffer>;
  else if (typeof r.body === "string") body = r.body;
  else if (r.body) {
    const bytes = r.body.stream;
    let offset = 0;
    body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (offset >= bytes.length) return c.close();
        c.enqueue(bytes.slice(offset, offset + 65536));
        offset += 65536;
      },
    });
  }
  const res = await fetch(`${stack.url}${r.path}`, {
    method: r.method,
    headers: r.headers.map(([k, v]) => [k, resolve(v)]),
    body: r.method === "GET" || r.method === "HEAD" ? null : body,
    redirect: "manual",
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, headers: res.headers, json };
}

function secretsOf(stack: LocalStack): string[] {
  return [
    stack.serviceRoleKey,
    stack.jwtSecret,
    stack.hookSecret,
    stack.hookSecret.replace(/^v1,/, ""),
    stack.hookSecret.replace(/^v1,whsec_/, ""),
    "postgres:postgres@",
  ];
}

/** What every answer must satisfy, whoever asked. */
function checkAnswer(stack: LocalStack, r: Hostile, a: Answer, label: string): void {
  const where = `${label}: ${r.method} ${r.path.slice(0, 80)} -> ${a.status} ${
    a.text.slice(0, 200)
  }`;
  assert.ok(a.status < 500, `never a 5xx for bad input (${where})`);
  (statuses[label] ??= {})[a.status] = (statuses[label][a.status] ?? 0) + 1;
  if (r.method !== "HEAD") {
    assert.ok(a.json !== undefined, `the answer is JSON (${where})`);
    assert.match(a.headers.get("content-type") ?? "", /^application\/json/, where);
    if (a.status >= 400) {
      assert.equal(typeof a.json?.error?.code, "string", `error shape (${where})`);
      assert.equal(typeof a.json?.error?.message, "string", `error shape (${where})`);
    }
  }
  const all = `${a.text}\n${[...a.headers].map(([k, v]) => `${k}: ${v}`).join("\n")}`;
  assertNoInternals(all, where);
  for (const s of secretsOf(stack)) {
    assert.ok(!all.includes(s), `no secret in the answer (${where})`);
  }
}

// ---------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------
const printable = fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c));
const headerValue = (maxLength = 120) =>
  fc.string({ unit: printable, maxLength }).map((s) => s.trim());
const b64url = (maxLength: number) =>
  fc.string({
    unit: fc.constantFrom(
      ..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".split(""),
    ),
    minLength: 1,
    maxLength,
  });
const uuid = fc.uuid({ version: 4 });

const method = fc.oneof(
  { weight: 10, arbitrary: fc.constant("POST") },
  { weight: 4, arbitrary: fc.constant("GET") },
  { weight: 3, arbitrary: fc.constantFrom("PUT", "PATCH", "DELETE", "OPTIONS", "HEAD") },
  {
    weight: 1,
    arbitrary: fc.stringMatching(/^[A-Z]{1,12}$/).filter((m) =>
      !["CONNECT", "TRACE", "TRACK"].includes(m)
    ),
  },
);

function pathFor(fn: Fn) {
  const base = `/functions/v1/${fn}`;
  return fc.oneof(
    { weight: 8, arbitrary: fc.constant(base) },
    { weight: 1, arbitrary: fc.constant(`${base}/`) },
    {
      weight: 1,
      arbitrary: fc.string({ unit: "grapheme", maxLength: 30 }).map((s) =>
        `${base}/${encodeURIComponent(s)}`
      ),
    },
    {
      weight: 2,
      arbitrary: fc.dictionary(
        fc.string({ unit: printable, minLength: 1, maxLength: 10 }),
        fc.string({ unit: "grapheme", maxLength: 30 }),
        { maxKeys: 4 },
      ).map((q) => `${base}?${new URLSearchParams(q)}`),
    },
    { weight: 1, arbitrary: fc.constantFrom(`${base}/../${fn}`, `${base}%2F..`, `${base}//x`) },
  );
}

const contentType = fc.option(
  fc.oneof(
    fc.constantFrom(
      "application/json",
      "application/json; charset=utf-8",
      "APPLICATION/JSON",
      "application/vnd.api+json",
      "text/plain",
      "text/json",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=xyz",
      "application/octet-stream",
      "application/json; charset=latin1",
      "",
    ),
    headerValue(60),
  ),
  { nil: undefined },
);

/** Deep nesting as text (JSON.stringify of such values is itself a test of depth). */
const deep = fc.tuple(fc.integer({ min: 1, max: 200_000 }), fc.boolean()).map(([n, arr]) =>
  arr ? "[".repeat(n) + "]".repeat(n) : '{"a":'.repeat(n) + "null" + "}".repeat(n)
);

/** Any body: random JSON shapes, wrong types, bytes, unicode, nesting, sizes. */
const anyBody = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 5 }).map((v) => JSON.stringify(v) ?? "null") },
  { weight: 2, arbitrary: fc.string({ unit: "grapheme", maxLength: 200 }) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 200 }) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 512 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '{"a": "\\ud800"}',
      '"\\u0000"',
      "\uFEFF{}",
      "{}garbage",
      "[1,2",
      "nul\u0000l",
    ),
  },
  { weight: 1, arbitrary: deep },
  {
    weight: 1,
    arbitrary: fc.constantFrom(MAX_BODY_BYTES - 16, MAX_BODY_BYTES + 1, 2 * MAX_BODY_BYTES).chain((
      size,
    ) =>
      fc.constantFrom<Hostile["body"]>(
        JSON.stringify({ blob: "x".repeat(Math.max(0, size - 12)) }),
        { stream: new TextEncoder().encode(JSON.stringify({ blob: "y".repeat(size) })) },
      )
    ),
  },
  { weight: 1, arbitrary: fc.constant(null) },
);

const extraHeaders = fc.array(
  fc.tuple(
    fc.stringMatching(/^x-[a-z0-9-]{1,16}$/),
    headerValue(200),
  ),
  { maxLength: 4 },
);

/**
 * Credentials appear in generated requests as {{placeholders}}, replaced when sent, so
 * that a counterexample printed by fast-check never shows a key or a token.
 */
const placeholders = new Map<string, string>();
function resolve(value: string): string {
  return value.replace(/\{\{([\w+-]+)\}\}/g, (m, name) => placeholders.get(name) ?? m);
}

/** Credentials that must never work: garbage, near misses, forged tokens. */
function badCredentials() {
  const nearMisses = [
    "{{service+x}}",
    "{{service-1}}",
    "{{service-payload+x}}",
    "{{service-payload-2}}",
    "{{service-upper}}",
    "{{service-prefix}}",
    "{{anon}}",
    "Bearer {{service}}",
    ...[0, 1, 2, 3, 4].map((i) => `{{forged-${i}}}`),
  ];
  const token = fc.oneof(
    headerValue(200),
    fc.tuple(b64url(40), b64url(200), b64url(60)).map(([a, b, c]) => `${a}.${b}.${c}`),
    fc.tuple(b64url(40), b64url(200)).map(([a, b]) => `eyJ${a}.eyJ${b}.`),
    fc.constantFrom(...nearMisses),
  );
  return fc.record({
    apikey: fc.option(token, { nil: undefined }),
    authorization: fc.option(
      fc.oneof(
        token.map((x) => `Bearer ${x}`),
        token.map((x) => `bearer  ${x}`),
        token.map((x) => `Basic ${x}`),
        headerValue(100),
        fc.constant("Bearer"),
      ),
      { nil: undefined },
    ),
  });
}

/** Webhook headers that may or may not be there, never correctly signed. */
const webhookHeaders = fc.record({
  "webhook-id": fc.option(headerValue(60), { nil: undefined }),
  "webhook-timestamp": fc.option(
    fc.oneof(
      fc.integer({ min: 0, max: 2 ** 40 }).map(String),
      fc.constant(String(Math.floor(Date.now() / 1000))),
      headerValue(20),
    ),
    { nil: undefined },
  ),
  "webhook-signature": fc.option(
    fc.oneof(
      headerValue(120),
      b64url(44).map((s) => `v1,${s}=`),
      fc.array(b64url(44).map((s) => `v1,${s}`), { maxLength: 50 }).map((xs) => xs.join(" ")),
    ),
    { nil: undefined },
  ),
});

function headerList(...parts: Record<string, string | undefined>[]): [string, string][] {
  const out: [string, string][] = [];
  for (const part of parts) {
    for (const [k, v] of Object.entries(part)) if (v !== undefined) out.push([k, v]);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Set-up shared by the properties
// ---------------------------------------------------------------------------
let sql: Sql | undefined;
let firstRun = Number.MAX_SAFE_INTEGER;
async function setup(): Promise<{ stack: LocalStack; sql: Sql }> {
  const stack = await t.stack();
  if (!sql) {
    sql = adminDb(2);
    firstRun = Number((await sql`select coalesce(max(id), 0) as id from user_sync.runs`)[0].id);
  }
  if (placeholders.size === 0) {
    const now = Math.floor(Date.now() / 1000);
    const sign = (claims: Record<string, unknown>, secret: string) =>
      new SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(
        new TextEncoder().encode(secret),
      );
    const none = (claims: Record<string, unknown>) =>
      `${btoa(JSON.stringify({ alg: "none", typ: "JWT" })).replace(/=+$/, "")}.${
        btoa(JSON.stringify(claims)).replace(/=+$/, "")
      }.`;
    const forged = [
      await sign(
        { role: "service_role", exp: now + 3600 },
        "another-projects-secret-of-32-characters!",
      ),
      await sign(
        { role: "authenticated", sub: crypto.randomUUID(), exp: now + 3600 },
        "x".repeat(32),
      ),
      none({ role: "service_role", exp: now + 3600 }),
      none({ role: "authenticated", sub: crypto.randomUUID(), user_role: "admin" }),
      await sign({ role: "service_role", exp: now - 10 }, stack.jwtSecret), // expired
    ];
    const key = stack.serviceRoleKey;
    const [h, p, sig] = key.split(".");
    for (
      const [name, value] of Object.entries({
        "service": key,
        "service+x": `${key}x`,
        "service-1": key.slice(0, -1),
        "service-payload+x": `${h}.${p}x.${sig}`,
        "service-payload-2": `${h}.${p.slice(0, -2)}.${sig}`,
        "service-upper": key.toUpperCase(),
        "service-prefix": key.slice(0, 20),
        "anon": stack.anonKey,
      })
    ) placeholders.set(name, value);
    forged.forEach((f, i) => placeholders.set(`forged-${i}`, f));
  }
  return { stack, sql };
}

function count(label: string) {
  cases[label] = (cases[label] ?? 0) + 1;
}

// ---------------------------------------------------------------------------
// 1. Without valid credentials: nothing but 4xx (and CORS preflights), nothing written
// ---------------------------------------------------------------------------
for (const fn of FUNCTIONS) {
  Deno.test({
    ...integration,
    name: `${fn}: hostile requests without valid credentials: 4xx JSON, no internals, no write`,
    async fn() {
      const { stack, sql } = await setup();
      const label = `${fn} without credentials`;
      const request = fc.record({
        method,
        path: pathFor(fn),
        contentType,
        creds: badCredentials(),
        hook: fn === "auth-webhook" ? webhookHeaders : fc.constant({}),
        extra: extraHeaders,
        body: anyBody,
      }).map(({ method, path, contentType, creds, hook, extra, body }): Hostile => ({
        method,
        path,
        headers: [
          ...headerList({ "content-type": contentType }, creds, hook as Record<string, string>),
          ...extra,
        ],
        body,
      }));
      await fc.assert(
        fc.asyncProperty(request, async (r) => {
          count(label);
          const before = await fingerprint(sql);
          const a = await send(stack, r);
          checkAnswer(stack, r, a, label);
          if (r.method === "OPTIONS" && a.status === 200) return; // CORS preflight
          assert.ok(
            a.status >= 400,
            `no 2xx without credentials: ${a.status} ${a.text.slice(0, 200)}`,
          );
          assert.deepEqual(await fingerprint(sql), before, "nothing was written");
        }),
        { numRuns: PROPERTY_RUNS },
      );
    },
  });
}

// ---------------------------------------------------------------------------
// 2. With the secret key: hostile bodies and headers are 4xx; writes only on 2xx
// ---------------------------------------------------------------------------
const text = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 80 }),
  fc.string({ unit: "binary", maxLength: 80 }),
  fc.constantFrom("", " ", "\u0000", "\u202eevil", "a\nb", "x".repeat(300)),
);
const wrongType = fc.oneof(
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.object({ maxDepth: 2 }),
);
/** user_metadata that a real Auth server accepts (see the header) or that we refuse. */
const metadata = fc.oneof(
  fc.dictionary(fc.string({ maxLength: 20 }), fc.jsonValue({ maxDepth: 4 }), { maxKeys: 6 }),
  fc.integer({ min: 1, max: 1000 }).map((n) => ({
    deep: JSON.parse("[".repeat(n) + "]".repeat(n)),
  })),
  fc.constantFrom({ x: "nul\u0000inside" }, { ["k\u0000"]: 1 }, { role: "admin" }),
  wrongType,
);
const hostileCreateUserFields = {
  email: fc.oneof(
    uuid.map((u) => `hostile-${u.slice(0, 13)}@${DOMAIN}`),
    uuid.map((u) => `HOSTILE-${u.slice(0, 13)}@${DOMAIN.toUpperCase()}`),
    fc.emailAddress(),
    text,
    wrongType,
  ),
  phone: fc.oneof(fc.stringMatching(/^\+[1-9]\d{7,12}$/), text, wrongType),
  password: fc.oneof(
    fc.string({ unit: printable, minLength: 6, maxLength: 72 }),
    text,
    wrongType,
  ),
  email_confirm: fc.oneof(fc.boolean(), wrongType),
  name: fc.oneof(text, wrongType),
  avatar_url: fc.oneof(
    fc.webUrl(),
    fc.constantFrom(
      "javascript:alert(1)",
      "https://x/ y",
      "data:image/png;base64,AAAA",
      `https://${"a".repeat(3000)}.test`,
    ),
    text,
    wrongType,
  ),
  role: fc.oneof(
    fc.constantFrom("user", "admin", "superuser", "ADMIN", "service_role"),
    text,
    wrongType,
  ),
  user_metadata: metadata,
  extra: fc.jsonValue({ maxDepth: 2 }),
};
const hostileCreateUserBody = fc.record(hostileCreateUserFields, { requiredKeys: [] });
/** A body Auth accepts (see the header for what the stand-in cannot take). */
const validCreateUserBody = fc.record({
  email: uuid.map((u) => `hostile-${u.slice(0, 13)}@${DOMAIN}`),
  password: fc.oneof(
    fc.string({ unit: printable, minLength: 6, maxLength: 72 }),
    fc.string({ unit: "grapheme", minLength: 6, maxLength: 30 }).filter((x) =>
      x.length <= 72 && !x.includes("\u0000")
    ),
  ),
  email_confirm: fc.boolean(),
  name: fc.string({ unit: "grapheme", minLength: 1, maxLength: 60 }).filter((x) =>
    x.trim().length > 0 && !/\p{Cc}/u.test(x)
  ),
  avatar_url: fc.constantFrom("https://cdn.example.test/a.png", "http://x.test/ü.png"),
  role: fc.constantFrom("user", "admin"),
  user_metadata: fc.oneof(
    fc.dictionary(fc.string({ maxLength: 20 }), fc.jsonValue({ maxDepth: 4 }), { maxKeys: 6 }),
    fc.integer({ min: 1, max: 1000 }).map((n) => ({
      deep: JSON.parse("[".repeat(n) + "]".repeat(n)),
    })),
  ),
}, { requiredKeys: ["email"] });
const createUserBody = fc.oneof(
  validCreateUserBody,
  // valid but for one field
  fc.constantFrom(...Object.keys(hostileCreateUserFields)).chain((k) =>
    fc.tuple(
      validCreateUserBody,
      hostileCreateUserFields[k as keyof typeof hostileCreateUserFields] as fc.Arbitrary<unknown>,
    ).map(([v, h]) => ({ ...v, [k]: h }))
  ),
  hostileCreateUserBody,
);

const syncAllBody = fc.oneof(
  fc.record({
    dry_run: fc.oneof(fc.boolean(), wrongType, text),
    source: fc.oneof(fc.constantFrom("cron", "api", "admin", "manual"), text, wrongType),
    extra: fc.jsonValue({ maxDepth: 2 }),
  }, { requiredKeys: [] }),
  wrongType,
);

const databaseWebhookBody = (knownId: string) =>
  fc.oneof(
    fc.record({
      type: fc.constantFrom("INSERT", "UPDATE", "DELETE"),
      table: fc.constant("users"),
      schema: fc.constant("auth"),
      record: fc.record({ id: fc.oneof(uuid, fc.constant(knownId)) }),
      old_record: fc.oneof(fc.record({ id: uuid }), fc.constant(null)),
    }),
    hostileWebhookBody(knownId),
  );
const hostileWebhookBody = (knownId: string) =>
  fc.record({
    type: fc.oneof(
      fc.constantFrom("INSERT", "UPDATE", "DELETE", "TRUNCATE", "insert"),
      text,
      wrongType,
    ),
    table: fc.oneof(fc.constantFrom("users", "identities", "USERS"), text, wrongType),
    schema: fc.oneof(fc.constantFrom("auth", "public"), text, wrongType),
    record: fc.oneof(
      fc.record({ id: fc.oneof(uuid, fc.constant(knownId), text, wrongType) }, {
        requiredKeys: [],
      }),
      fc.constant(null),
      wrongType,
    ),
    old_record: fc.oneof(fc.record({ id: fc.oneof(uuid, text) }), fc.constant(null), wrongType),
  }, { requiredKeys: [] });

const serviceCreds = () =>
  fc.constantFrom(
    { apikey: "{{service}}" },
    { authorization: "Bearer {{service}}" },
    { apikey: "{{anon}}", authorization: "Bearer {{service}}" },
  );

for (const fn of FUNCTIONS) {
  Deno.test({
    ...integration,
    name:
      `${fn}: hostile bodies and headers with the secret key: no 5xx, JSON, writes only when 2xx`,
    async fn() {
      const { stack, sql } = await setup();
      const label = `${fn} with the secret key`;
      const [known] = await sql`select id::text as id from auth.users limit 1`;
      const shaped = fn === "create-user"
        ? createUserBody
        : fn === "sync-all"
        ? syncAllBody
        : databaseWebhookBody(known?.id ?? crypto.randomUUID());
      const body = fc.oneof(
        { weight: 3, arbitrary: shaped.map((v) => JSON.stringify(v)) },
        { weight: 2, arbitrary: anyBody },
      );
      const request = fc.record({
        method: fc.oneof({ weight: 4, arbitrary: fc.constant("POST") }, {
          weight: 1,
          arbitrary: method,
        }),
        path: fc.oneof({ weight: 5, arbitrary: fc.constant(`/functions/v1/${fn}`) }, {
          weight: 1,
          arbitrary: pathFor(fn),
        }),
        contentType: fc.oneof({ weight: 5, arbitrary: fc.constant("application/json") }, {
          weight: 1,
          arbitrary: contentType,
        }),
        creds: serviceCreds(),
        extra: extraHeaders,
        body,
      }).map(({ method, path, contentType, creds, extra, body }): Hostile => ({
        method,
        path,
        headers: [...headerList({ "content-type": contentType }, creds), ...extra],
        body,
      }));
      await fc.assert(
        fc.asyncProperty(request, async (r) => {
          count(label);
          const before = await fingerprint(sql);
          const a = await send(stack, r);
          checkAnswer(stack, r, a, label);
          const after = await fingerprint(sql);
          if (a.status >= 300 || r.method === "OPTIONS") {
            assert.deepEqual(
              after,
              before,
              `a refused request wrote nothing (${a.status} ${a.text.slice(0, 200)})`,
            );
            return;
          }
          // 2xx: valid and authorized; what it wrote is consistent.
          if (fn === "create-user") {
            assert.equal(a.status, 201);
            const id = a.json.user.id as string;
            createdIds.add(id);
            const [row] = await sql`
              select au.email as auth_email, p.email as profile_email, p.id is not null as has_profile
              from auth.users au left join public.users p on p.id = au.id where au.id = ${id}`;
            assert.ok(row?.has_profile, "the created user has its profile");
            assert.equal(row.profile_email, row.auth_email);
          } else if (fn === "auth-webhook") {
            assert.deepEqual(after, before, "syncing an in-sync or unknown user writes nothing");
          } else if (r.method === "GET") {
            assert.deepEqual(after, before, "GET sync-all only reads");
          } else if (!a.json.skipped) {
            assert.equal(a.json.status, "ok", "a reconcile ran and succeeded");
          }
        }),
        { numRuns: PROPERTY_RUNS },
      );
    },
  });
}

// ---------------------------------------------------------------------------
// 3. Correctly signed hooks with hostile payloads: 200 only for a valid hook
//    payload, 400 otherwise; hooks never write; claims are never dropped.
// ---------------------------------------------------------------------------
Deno.test({
  ...integration,
  name:
    "auth-webhook: correctly signed hooks with hostile payloads: 200 for valid hooks, 400 otherwise, never a write",
  async fn() {
    const { stack, sql } = await setup();
    const label = "auth-webhook signed hooks";
    const [known] =
      await sql`select id::text as id from public.users where deleted_at is null limit 1`;
    const claims = fc.dictionary(fc.string({ maxLength: 20 }), fc.jsonValue({ maxDepth: 3 }), {
      maxKeys: 8,
    });
    const payload = fc.oneof(
      fc.record({
        user_id: fc.oneof(uuid, fc.constant(known?.id ?? crypto.randomUUID())),
        claims,
      }),
      fc.record({
        metadata: fc.record({ uuid, name: fc.constant("before-user-created") }),
        user: fc.record({
          email: fc.oneof(fc.emailAddress(), fc.constant(null)),
          phone: fc.oneof(fc.constant(""), fc.constant(null)),
        }),
      }),
      fc.record({
        user_id: fc.oneof(uuid, fc.constant(known?.id ?? crypto.randomUUID()), text, wrongType),
        claims: fc.oneof(claims, wrongType),
        authentication_method: fc.oneof(fc.constantFrom("password", "oauth", "otp"), wrongType),
      }, { requiredKeys: [] }),
      fc.record({
        metadata: fc.oneof(
          fc.record({
            uuid: fc.oneof(uuid, wrongType),
            name: fc.oneof(fc.constant("before-user-created"), text),
            ip_address: fc.oneof(fc.ipV4(), text),
          }, { requiredKeys: [] }),
          wrongType,
        ),
        user: fc.oneof(
          fc.record({
            email: fc.oneof(fc.emailAddress(), text, wrongType),
            phone: fc.oneof(text, wrongType),
          }, { requiredKeys: [] }),
          wrongType,
        ),
      }, { requiredKeys: [] }),
      fc.jsonValue({ maxDepth: 4 }),
    );
    await fc.assert(
      fc.asyncProperty(payload, async (p) => {
        count(label);
        const body = JSON.stringify(p);
        const r: Hostile = {
          method: "POST",
          path: "/functions/v1/auth-webhook",
          headers: Object.entries(signedHeaders(stack.hookSecret, body)),
          body,
        };
        const before = await fingerprint(sql);
        const a = await send(stack, r);
        checkAnswer(stack, r, a, label);
        assert.deepEqual(await fingerprint(sql), before, "a hook never writes");
        const sent = JSON.parse(body); // what the server saw
        const cat = CustomAccessTokenPayload.safeParse(sent);
        const buc = BeforeUserCreatedPayload.safeParse(sent);
        if (cat.success || buc.success) {
          assert.equal(a.status, 200, a.text.slice(0, 300));
          if (cat.success) {
            for (const [k, v] of Object.entries(cat.data.claims)) {
              if (k !== "user_role") assert.deepEqual(a.json.claims[k], v, `claim ${k} kept`);
            }
          }
        } else {
          assert.equal(a.status, 400, a.text.slice(0, 300));
        }
      }),
      { numRuns: PROPERTY_RUNS },
    );
    // A Database Webhook shape signed as a hook is not a way to make it sync anything.
    assert.equal(DatabaseWebhookPayload.safeParse({}).success, false);
  },
});

// ---------------------------------------------------------------------------
// 4. Raw HTTP/1.1 framing over a socket: malformed lengths, duplicate and conflicting
//    framing headers, bad chunking, odd bytes. The server (Deno) may refuse the
//    framing itself; whatever answers, never a 5xx, and our answers are JSON.
// ---------------------------------------------------------------------------
async function rawRequest(
  port: number,
  bytes: Uint8Array,
): Promise<{ status: number | null; text: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const chunks: Uint8Array[] = [];
  const timer = setTimeout(() => {
    try {
      conn.close();
    } catch {
      // closed
    }
  }, 5000);
  try {
    await conn.write(bytes).catch(() => 0);
    const buf = new Uint8Array(65536);
    while (true) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
      const sofar = new TextDecoder().decode(concat(chunks));
      if (responseComplete(sofar)) break;
    }
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // closed
    }
  }
  const text = new TextDecoder().decode(concat(chunks));
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  return { status: m ? Number(m[1]) : null, text };
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

function responseComplete(text: string): boolean {
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) return false;
  const head = text.slice(0, end).toLowerCase();
  const len = /\ncontent-length: *(\d+)/.exec(head);
  if (len) return text.length - end - 4 >= Number(len[1]);
  if (/\ntransfer-encoding: *chunked/.test(head)) return text.endsWith("0\r\n\r\n");
  return false;
}

Deno.test({
  ...integration,
  name:
    "raw HTTP framing (bad Content-Length, duplicate and conflicting framing, bad chunks): never a 5xx",
  async fn() {
    const { stack, sql } = await setup();
    const label = "raw HTTP framing";
    const fnName = fc.constantFrom(...FUNCTIONS);
    const framing = fc.oneof(
      fc.constantFrom(
        "Content-Length: -1",
        "Content-Length: abc",
        "Content-Length: 99999999999999999999",
        "Content-Length: 1e3",
        "Content-Length: 5\r\nContent-Length: 6",
        "Content-Length: 2000000",
        "Transfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 3",
        "Transfer-Encoding: gzip, chunked",
        "Transfer-Encoding: identity",
        "Content-Type: application/json\r\nContent-Type: text/plain",
        "Expect: 100-continue",
      ),
      fc.integer({ min: 0, max: 4096 }).map((n) => `Content-Length: ${n}`),
    );
    const payload = fc.oneof(
      fc.constantFrom(
        "{}",
        '{"dry_run": true}',
        "5\r\nhello\r\n0\r\n\r\n",
        "zz\r\n{}\r\n0\r\n\r\n",
        "ffffffff\r\n{}",
        "",
      ),
      fc.string({ unit: "binary", maxLength: 300 }),
    );
    const creds = fc.constantFrom("", "apikey: {{service}}\r\n", "apikey: nope\r\n");
    const methodArb = fc.constantFrom("POST", "GET", "PUT", "OPTIONS");
    let noAnswer = 0;
    await fc.assert(
      fc.asyncProperty(fnName, methodArb, framing, creds, payload, async (fn, m, f, c, p) => {
        count(label);
        const before = await fingerprint(sql);
        const head =
          `${m} /functions/v1/${fn} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n` +
          `Content-Type: application/json\r\n${c}${f}\r\n\r\n`;
        const res = await rawRequest(stack.port, new TextEncoder().encode(resolve(head) + p));
        if (res.status === null) {
          noAnswer++;
          return; // the server closed the connection: a refusal, not an answer
        }
        (statuses[label] ??= {})[res.status] = (statuses[label][res.status] ?? 0) + 1;
        assert.ok(res.status < 500, `never a 5xx: ${res.text.slice(0, 300)}`);
        assertNoInternals(res.text, label);
        for (const s of secretsOf(stack)) {
          assert.ok(!res.text.includes(s), "no secret in the answer");
        }
        const bodyStart = res.text.indexOf("\r\n\r\n");
        const body = res.text.slice(bodyStart + 4);
        if (
          /content-type: application\/json/i.test(res.text.slice(0, bodyStart)) &&
          res.status >= 400 && body.trim().startsWith("{")
        ) {
          assert.match(
            body,
            /"error":\{"code":"[a-z_]+","message":/,
            "our errors keep their shape",
          );
        }
        if (res.status >= 400 || m === "GET" || m === "OPTIONS") {
          assert.deepEqual(await fingerprint(sql), before, "a refused request wrote nothing");
        }
      }),
      { numRuns: Math.max(20, Math.floor(PROPERTY_RUNS / 2)) },
    );
    figures("hostile input", {
      property_runs: PROPERTY_RUNS,
      cases,
      total_cases: Object.values(cases).reduce((a, b) => a + b, 0),
      statuses,
      raw_refused_without_answer: noAnswer,
      users_created_by_valid_requests: createdIds.size,
      server_errors: 0,
      writes_by_refused_requests: 0,
    });
  },
});

Deno.test({
  ...integration,
  name: "hostile-input runs log no key, token or password; created users are cleaned up",
  async fn() {
    const { stack, sql } = await setup();
    try {
      assertNoSecretsLogged(stack);
    } finally {
      await sql`delete from auth.users where id in ${
        sql([crypto.randomUUID() as string, ...createdIds])
      }
                 or email ilike ${"%@" + DOMAIN}`;
      await sql`delete from user_sync.runs where id > ${firstRun}`;
      await sql.end();
      await t.close();
    }
  },
});
