// Unit tests of the shared function code: configuration, caller classification,
// Standard Webhooks signatures, the error shape, bodies, log scrubbing, the
// email-domain policy. No database and no server needed.
import assert from "node:assert/strict";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import {
  type AuthDeps,
  AuthUnavailableError,
  createJwksGetter,
  identifyCaller,
  matchesAnyKey,
  requireService,
  requireServiceOrAdmin,
} from "../../supabase/functions/_shared/auth.ts";
import { type Config, ConfigError, loadConfig } from "../../supabase/functions/_shared/config.ts";
import type { Sql } from "../../supabase/functions/_shared/db.ts";
import { isDbUnavailable, literal } from "../../supabase/functions/_shared/db.ts";
import { HttpError, MAX_BODY_BYTES, readJson } from "../../supabase/functions/_shared/http.ts";
import { errorFields, log, scrub, setLogSink } from "../../supabase/functions/_shared/log.ts";
import { toErrorResponse } from "../../supabase/functions/_shared/runtime.ts";
import {
  parseSignatureHeader,
  signWebhook,
  verifyWebhook,
  WebhookSignatureError,
} from "../../supabase/functions/_shared/webhook_signature.ts";
import { emailPolicy } from "../../supabase/functions/auth-webhook/handler.ts";
import { createAuthWebhookHandler } from "../../supabase/functions/auth-webhook/handler.ts";
import {
  BeforeUserCreatedPayload,
  CustomAccessTokenPayload,
  DatabaseWebhookPayload,
} from "../../supabase/functions/auth-webhook/handler.ts";
import { CreateUserBody } from "../../supabase/functions/create-user/handler.ts";
import {
  AvatarUrl,
  postgresDuration,
  ProfileName,
  Uuid,
} from "../../supabase/functions/_shared/validation.ts";
import { apiKey, LOCAL_HOOK_SECRET, LOCAL_JWT_SECRET } from "../../platform/local.ts";

const SERVICE_KEY = await apiKey("service_role");
const ANON_KEY = await apiKey("anon");
const BASE_ENV = {
  SUPABASE_URL: "http://127.0.0.1:1",
  SUPABASE_DB_URL: "postgresql://postgres:s3cr3t-db-pw@127.0.0.1:1/postgres",
  SUPABASE_SERVICE_ROLE_KEY: SERVICE_KEY,
  SUPABASE_ANON_KEY: ANON_KEY,
  USER_SYNC_JWT_SECRET: LOCAL_JWT_SECRET,
  USER_SYNC_HOOK_SECRET: LOCAL_HOOK_SECRET,
};

async function expectHttpError(
  p: Promise<unknown> | (() => unknown),
  status: number,
  code?: string,
) {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (err) {
    assert.ok(err instanceof HttpError, `expected HttpError, got ${err}`);
    assert.equal(err.status, status);
    if (code) assert.equal(err.code, code);
    return err;
  }
  assert.fail(`expected an HTTP ${status}`);
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------
Deno.test("config: a complete environment loads, with defaults", () => {
  const c = loadConfig(BASE_ENV);
  assert.equal(c.supabaseUrl, "http://127.0.0.1:1");
  assert.equal(c.dbUrlVariable, "SUPABASE_DB_URL");
  assert.deepEqual(c.secretKeys, [SERVICE_KEY]);
  assert.deepEqual(c.publicKeys, [ANON_KEY]);
  assert.deepEqual(c.hookSecrets, ["whsec_dXNlci1zeW5jLWxvY2FsLWhvb2stc2VjcmV0LTAwMDE="]);
  assert.equal(c.hookTimeoutMs, 1500);
  assert.equal(c.reconcileStatementTimeout, "10min");
  assert.equal(c.corsOrigins, "*");
  assert.deepEqual(c.allowedEmailDomains, []);
});

Deno.test("config: each missing required variable is named, values never shown", () => {
  for (const missing of ["SUPABASE_URL", "SUPABASE_DB_URL"]) {
    const env: Record<string, string | undefined> = { ...BASE_ENV, [missing]: undefined };
    assert.throws(() => loadConfig(env), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.ok(err.variables.includes(missing));
      assert.match(err.message, new RegExp(`missing environment variable.*${missing}`));
      return true;
    });
  }
  assert.throws(
    () => loadConfig({ ...BASE_ENV, SUPABASE_SERVICE_ROLE_KEY: "  " }),
    /missing environment variable: SUPABASE_SECRET_KEYS or SUPABASE_SERVICE_ROLE_KEY/,
  );
  // several at once, and an invalid one, in one message
  assert.throws(() => loadConfig({ USER_SYNC_HOOK_TIMEOUT_MS: "soon" }), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /SUPABASE_URL, SUPABASE_DB_URL/);
    assert.match(err.message, /USER_SYNC_HOOK_TIMEOUT_MS must be a whole number/);
    return true;
  });
});

Deno.test("config: invalid values are named without echoing them", () => {
  const cases: Record<string, string> = {
    SUPABASE_DB_URL: "mysql://root:hunter2@db/x",
    USER_SYNC_HOOK_SECRET: "whsec-not-base64-hunter2!",
    SUPABASE_SECRET_KEYS: "{not json hunter2",
    USER_SYNC_DENIED_EMAIL_DOMAINS: "hunter2 not a domain!",
    SUPABASE_JWKS: "[hunter2",
    USER_SYNC_JWT_SECRET: "hunter2-too-short",
  };
  for (const [name, value] of Object.entries(cases)) {
    assert.throws(() => loadConfig({ ...BASE_ENV, [name]: value }), (err: unknown) => {
      assert.ok(err instanceof ConfigError, name);
      assert.deepEqual(err.variables, [name]);
      assert.ok(!err.message.includes("hunter2"), `${name}: value leaked in "${err.message}"`);
      return true;
    });
  }
});

Deno.test("config: new API keys, pooler override, domain lists and hook secret rotation", () => {
  const c = loadConfig({
    ...BASE_ENV,
    SUPABASE_SERVICE_ROLE_KEY: undefined,
    SUPABASE_SECRET_KEYS: JSON.stringify({ default: "sb_secret_abc123", cron: "sb_secret_def456" }),
    SUPABASE_PUBLISHABLE_KEYS: JSON.stringify({ default: "sb_publishable_xyz" }),
    USER_SYNC_DB_POOLER_URL: "postgresql://postgres.ref:pw@pooler.example:6543/postgres",
    USER_SYNC_ALLOWED_EMAIL_DOMAINS: "Example.COM, @corp.example ,example.com",
    USER_SYNC_HOOK_SECRET: `${LOCAL_HOOK_SECRET} | v1,whsec_b3RoZXItc2VjcmV0`,
    USER_SYNC_CORS_ALLOWED_ORIGINS: "https://app.example, https://admin.example",
  });
  assert.deepEqual(c.secretKeys, ["sb_secret_abc123", "sb_secret_def456"]);
  assert.equal(c.authAdminKey, "sb_secret_abc123");
  assert.deepEqual(c.publicKeys, ["sb_publishable_xyz", ANON_KEY]);
  assert.equal(c.dbUrl, "postgresql://postgres.ref:pw@pooler.example:6543/postgres");
  assert.equal(c.dbUrlVariable, "USER_SYNC_DB_POOLER_URL");
  assert.deepEqual(c.allowedEmailDomains, ["example.com", "corp.example"]);
  assert.equal(c.hookSecrets.length, 2);
  assert.deepEqual(c.corsOrigins, ["https://app.example", "https://admin.example"]);
});

Deno.test("config error answers 503 misconfigured without naming the variable (the log names it, never its value)", async () => {
  const lines: string[] = [];
  const previous = setLogSink((l) => lines.push(l));
  const handler = createAuthWebhookHandler({ env: { ...BASE_ENV, SUPABASE_URL: undefined } });
  const res = await handler(
    new Request("http://x/auth-webhook", {
      method: "POST",
      headers: { "content-type": "application/json", apikey: SERVICE_KEY },
      body: "{}",
    }),
  );
  assert.equal(res.status, 503);
  const body = await res.json();
  assert.equal(body.error.code, "misconfigured");
  // an unauthenticated caller learns nothing about the configuration
  assert.doesNotMatch(JSON.stringify(body), /SUPABASE|USER_SYNC|variable/);
  assert.equal(body.error.details, undefined);
  assert.ok(!JSON.stringify(body).includes("s3cr3t-db-pw"));
  await handler.close();
  setLogSink(previous);
  const logged = lines.map((l) => JSON.parse(l)).find((l) => l.event === "configuration invalid");
  assert.deepEqual(logged?.variables, ["SUPABASE_URL"]);
  assert.ok(!lines.join("\n").includes("s3cr3t-db-pw"));
});

// ---------------------------------------------------------------------------
// Caller classification
// ---------------------------------------------------------------------------
function deps(
  overrides: Partial<Config> = {},
  opts: { rows?: unknown[]; fetch?: typeof fetch; queries?: string[] } = {},
): AuthDeps {
  const config = { ...loadConfig(BASE_ENV), ...overrides };
  const fakeSql = (strings: TemplateStringsArray, ..._values: unknown[]) => {
    opts.queries?.push(strings.join("$"));
    return Promise.resolve(opts.rows ?? []);
  };
  const fetchImpl = opts.fetch ?? (() => Promise.reject(new TypeError("network down")));
  return {
    config,
    sql: () => fakeSql as unknown as Sql,
    fetch: fetchImpl,
    jwks: () => createJwksGetter(config, fetchImpl),
  };
}

function req(headers: Record<string, string>): Request {
  return new Request("http://x/sync-all", { headers });
}

async function userToken(
  claims: Record<string, unknown>,
  secret = LOCAL_JWT_SECRET,
  expSeconds = 3600,
) {
  return await new SignJWT({ role: "authenticated", aud: "authenticated", ...claims })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + expSeconds)
    .sign(new TextEncoder().encode(secret));
}

const USER_ID = "6f1c2a52-1d8e-4a7b-9a55-3c0c3b2f6a11";

Deno.test("caller: the secret key in apikey or as Bearer is the service caller", async () => {
  assert.deepEqual(await identifyCaller(req({ apikey: SERVICE_KEY }), deps()), { kind: "service" });
  assert.deepEqual(await identifyCaller(req({ authorization: `Bearer ${SERVICE_KEY}` }), deps()), {
    kind: "service",
  });
  // cron: both headers; the new secret keys too
  const d = deps({ secretKeys: ["sb_secret_abc", SERVICE_KEY] });
  assert.deepEqual(await identifyCaller(req({ apikey: "sb_secret_abc" }), d), { kind: "service" });
  assert.deepEqual(
    await identifyCaller(
      req({ apikey: "sb_secret_abc", authorization: "Bearer sb_secret_abc" }),
      d,
    ),
    { kind: "service" },
  );
});

Deno.test("caller: anon key only is anon, nothing is none, unknown keys are refused", async () => {
  assert.deepEqual(
    await identifyCaller(req({ apikey: ANON_KEY, authorization: `Bearer ${ANON_KEY}` }), deps()),
    {
      kind: "anon",
    },
  );
  assert.deepEqual(await identifyCaller(req({}), deps()), { kind: "none" });
  await expectHttpError(
    identifyCaller(req({ apikey: "sb_secret_wrong" }), deps()),
    401,
    "invalid_credentials",
  );
  await expectHttpError(
    identifyCaller(req({ authorization: "Bearer not-a-key" }), deps()),
    401,
    "invalid_credentials",
  );
  // a near miss of the secret key is not the secret key
  await expectHttpError(
    identifyCaller(req({ apikey: SERVICE_KEY.slice(0, -1) + "x" }), deps()),
    401,
  );
});

Deno.test("caller: a user JWT is verified for real (HS256), then Auth's role (user_sync.auth_role, not the mirror) decides admin", async () => {
  const token = await userToken({ sub: USER_ID });
  const queries: string[] = [];
  const admin = await identifyCaller(
    req({ apikey: ANON_KEY, authorization: `Bearer ${token}` }),
    deps({}, { rows: [{ role: "admin" }], queries }),
  );
  assert.deepEqual(admin, { kind: "user", userId: USER_ID, role: "admin", isAdmin: true });
  assert.equal(queries.length, 1);
  assert.match(queries[0], /user_sync\.auth_role\(/, "the decision reads auth.users through auth_role");
  assert.doesNotMatch(queries[0], /public\.users/, "never the mirror");
  const plain = await identifyCaller(
    req({ authorization: `Bearer ${token}` }),
    deps({}, { rows: [{ role: "user" }] }),
  );
  assert.equal(plain.kind === "user" && plain.isAdmin, false);
  // a soft-deleted, banned or missing auth user has no role: no admin
  const none = await identifyCaller(
    req({ authorization: `Bearer ${token}` }),
    deps({}, { rows: [{ role: null }] }),
  );
  assert.deepEqual(none, { kind: "user", userId: USER_ID, role: null, isAdmin: false });
  // role claims in user_metadata or app_metadata of the token give nothing
  const forged = await userToken({
    sub: USER_ID,
    app_metadata: { role: "admin" },
    user_metadata: { role: "admin" },
  });
  const forgedCaller = await identifyCaller(
    req({ authorization: `Bearer ${forged}` }),
    deps({}, { rows: [{ role: "user" }] }),
  );
  assert.equal(forgedCaller.kind === "user" && forgedCaller.isAdmin, false);
});

Deno.test("caller: expired, foreign-signed, unsigned and malformed JWTs are 401", async () => {
  const expired = await userToken({ sub: USER_ID }, LOCAL_JWT_SECRET, -60);
  const foreign = await userToken(
    { sub: USER_ID },
    "another-project-secret-another-project-secret",
  );
  const header = btoa(JSON.stringify({ alg: "none", typ: "JWT" })).replace(/=+$/, "");
  const payload = btoa(JSON.stringify({ sub: USER_ID, role: "authenticated" })).replace(/=+$/, "");
  const unsigned = `${header}.${payload}.`;
  const noSub = await userToken({});
  for (const token of [expired, foreign, unsigned, noSub, "eyJhbGciOi.broken.token"]) {
    await expectHttpError(identifyCaller(req({ authorization: `Bearer ${token}` }), deps()), 401);
  }
});

Deno.test("caller: a service_role JWT signed with the project's secret is the service caller", async () => {
  const token = await new SignJWT({ role: "service_role", iss: "supabase" })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(new TextEncoder().encode(LOCAL_JWT_SECRET));
  assert.deepEqual(await identifyCaller(req({ authorization: `Bearer ${token}` }), deps()), {
    kind: "service",
  });
});

Deno.test("caller: asymmetric user JWTs are verified through the JWKS", async () => {
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256", use: "sig" };
  const sign = (key: CryptoKey, kid = "k1") =>
    new SignJWT({ sub: USER_ID, role: "authenticated", aud: "authenticated" })
      .setProtectedHeader({ alg: "ES256", kid, typ: "JWT" })
      .setExpirationTime("1h")
      .sign(key);
  const token = await sign(privateKey);
  // inline SUPABASE_JWKS
  const inline = deps({ jwks: { keys: [jwk] } }, { rows: [{ role: "admin" }] });
  assert.equal(
    (await identifyCaller(req({ authorization: `Bearer ${token}` }), inline)).kind,
    "user",
  );
  // fetched from Auth's well-known URL
  let fetched = "";
  const remote = deps({ jwks: undefined }, {
    rows: [{ role: "admin" }],
    fetch: (input) => {
      fetched = String(input instanceof Request ? input.url : input);
      return Promise.resolve(Response.json({ keys: [jwk] }));
    },
  });
  const caller = await identifyCaller(req({ authorization: `Bearer ${token}` }), remote);
  assert.equal(caller.kind === "user" && caller.isAdmin, true);
  assert.equal(fetched, "http://127.0.0.1:1/auth/v1/.well-known/jwks.json");
  // a token from another key is refused
  const other = await generateKeyPair("ES256");
  await expectHttpError(
    identifyCaller(req({ authorization: `Bearer ${await sign(other.privateKey)}` }), inline),
    401,
  );
  // Auth unreachable: 503, not 401
  await assert.rejects(
    identifyCaller(req({ authorization: `Bearer ${token}` }), deps({ jwks: undefined })),
    AuthUnavailableError,
  );
});

Deno.test("caller: without the JWT secret, Supabase Auth vouches for HS256 tokens", async () => {
  const token = await userToken({ sub: USER_ID });
  let seen: Headers | undefined;
  const ok = deps({ jwtSecret: undefined }, {
    rows: [{ role: "admin" }],
    fetch: (_input, init) => {
      seen = new Headers(init?.headers);
      return Promise.resolve(Response.json({ id: USER_ID, role: "authenticated" }));
    },
  });
  const caller = await identifyCaller(req({ authorization: `Bearer ${token}` }), ok);
  assert.equal(caller.kind === "user" && caller.isAdmin, true);
  assert.equal(seen?.get("authorization"), `Bearer ${token}`);
  const refused = deps({ jwtSecret: undefined }, {
    fetch: () => Promise.resolve(Response.json({ code: "bad_jwt" }, { status: 403 })),
  });
  await expectHttpError(
    identifyCaller(req({ authorization: `Bearer ${token}` }), refused),
    401,
    "invalid_token",
  );
  await assert.rejects(
    identifyCaller(req({ authorization: `Bearer ${token}` }), deps({ jwtSecret: undefined })),
    AuthUnavailableError,
  );
});

Deno.test("caller rules: 401 without credentials, 403 for non-admins, admins and service pass", async () => {
  await expectHttpError(() => requireServiceOrAdmin({ kind: "none" }), 401, "unauthorized");
  await expectHttpError(() => requireServiceOrAdmin({ kind: "anon" }), 401, "unauthorized");
  await expectHttpError(
    () => requireServiceOrAdmin({ kind: "user", userId: USER_ID, role: "user", isAdmin: false }),
    403,
    "forbidden",
  );
  requireServiceOrAdmin({ kind: "user", userId: USER_ID, role: "admin", isAdmin: true });
  requireServiceOrAdmin({ kind: "service" });
  await expectHttpError(
    () => requireService({ kind: "user", userId: USER_ID, role: "admin", isAdmin: true }),
    403,
  );
  await expectHttpError(() => requireService({ kind: "anon" }), 401);
  requireService({ kind: "service" });
});

Deno.test("matchesAnyKey: exact matches only, any length", () => {
  assert.equal(matchesAnyKey("abc", ["x", "abc"]), true);
  assert.equal(matchesAnyKey("abcd", ["abc"]), false);
  assert.equal(matchesAnyKey("ab", ["abc"]), false);
  assert.equal(matchesAnyKey("", ["abc"]), false);
  assert.equal(matchesAnyKey("abc", []), false);
});

// ---------------------------------------------------------------------------
// Standard Webhooks signatures
// ---------------------------------------------------------------------------
// The example published with the Standard Webhooks specification and libraries.
const VECTOR = {
  secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
};
const vectorHeaders = (signature = VECTOR.signature, timestamp = VECTOR.timestamp) =>
  new Headers({
    "webhook-id": VECTOR.id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": signature,
  });
const AT_VECTOR_TIME = VECTOR.timestamp * 1000;

function expectSignatureFailure(fn: () => unknown, reason: string) {
  assert.throws(
    fn,
    (err: unknown) => err instanceof WebhookSignatureError && err.reason === reason,
  );
}

Deno.test("signature: the published Standard Webhooks example signs and verifies", () => {
  assert.equal(
    signWebhook(VECTOR.secret, VECTOR.id, VECTOR.timestamp, VECTOR.body),
    VECTOR.signature,
  );
  assert.deepEqual(verifyWebhook(VECTOR.body, vectorHeaders(), [VECTOR.secret], AT_VECTOR_TIME), {
    id: VECTOR.id,
    timestamp: VECTOR.timestamp,
  });
  // `v1,whsec_...` (Supabase's format) is the same secret
  verifyWebhook(VECTOR.body, vectorHeaders(), [`v1,${VECTOR.secret}`], AT_VECTOR_TIME + 299_000);
});

Deno.test("signature: a stale or future timestamp is refused (5 minutes)", () => {
  expectSignatureFailure(
    () => verifyWebhook(VECTOR.body, vectorHeaders(), [VECTOR.secret]),
    "stale_timestamp",
  );
  expectSignatureFailure(
    () => verifyWebhook(VECTOR.body, vectorHeaders(), [VECTOR.secret], AT_VECTOR_TIME + 301_000),
    "stale_timestamp",
  );
  expectSignatureFailure(
    () => verifyWebhook(VECTOR.body, vectorHeaders(), [VECTOR.secret], AT_VECTOR_TIME - 301_000),
    "future_timestamp",
  );
  expectSignatureFailure(
    () =>
      verifyWebhook(
        VECTOR.body,
        vectorHeaders(VECTOR.signature, Number.NaN),
        [VECTOR.secret],
        AT_VECTOR_TIME,
      ),
    "invalid_timestamp",
  );
});

Deno.test("signature: a tampered body, id or timestamp is refused", () => {
  expectSignatureFailure(
    () => verifyWebhook('{"test": 2432232315}', vectorHeaders(), [VECTOR.secret], AT_VECTOR_TIME),
    "no_matching_signature",
  );
  expectSignatureFailure(
    () => verifyWebhook(VECTOR.body + " ", vectorHeaders(), [VECTOR.secret], AT_VECTOR_TIME),
    "no_matching_signature",
  );
  const otherId = new Headers(vectorHeaders());
  otherId.set("webhook-id", "msg_other");
  expectSignatureFailure(
    () => verifyWebhook(VECTOR.body, otherId, [VECTOR.secret], AT_VECTOR_TIME),
    "no_matching_signature",
  );
  expectSignatureFailure(
    () =>
      verifyWebhook(VECTOR.body, vectorHeaders(VECTOR.signature, VECTOR.timestamp + 1), [
        VECTOR.secret,
      ], AT_VECTOR_TIME),
    "no_matching_signature",
  );
  // another secret
  expectSignatureFailure(
    () => verifyWebhook(VECTOR.body, vectorHeaders(), ["whsec_b3RoZXItc2VjcmV0"], AT_VECTOR_TIME),
    "no_matching_signature",
  );
});

Deno.test("signature: several signatures in one header (space or Supabase's ', ')", () => {
  const wrong = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
  for (
    const header of [
      `${wrong} ${VECTOR.signature}`,
      `${VECTOR.signature} ${wrong}`,
      `${wrong}, ${VECTOR.signature}`,
      `v1a,ignored-asymmetric ${VECTOR.signature}`,
    ]
  ) {
    verifyWebhook(VECTOR.body, vectorHeaders(header), [VECTOR.secret], AT_VECTOR_TIME);
  }
  expectSignatureFailure(
    () =>
      verifyWebhook(VECTOR.body, vectorHeaders(`${wrong} v2,${VECTOR.signature.slice(3)}`), [
        VECTOR.secret,
      ], AT_VECTOR_TIME),
    "no_matching_signature",
  );
  assert.deepEqual(parseSignatureHeader("v1,a, v1,b v2,c junk"), ["a", "b"]);
  // secret rotation: the second configured secret matches
  verifyWebhook(
    VECTOR.body,
    vectorHeaders(),
    ["whsec_b3RoZXItc2VjcmV0", VECTOR.secret],
    AT_VECTOR_TIME,
  );
});

Deno.test("signature: missing headers are refused", () => {
  for (const drop of ["webhook-id", "webhook-timestamp", "webhook-signature"]) {
    const h = vectorHeaders();
    h.delete(drop);
    expectSignatureFailure(
      () => verifyWebhook(VECTOR.body, h, [VECTOR.secret], AT_VECTOR_TIME),
      "missing_headers",
    );
  }
});

// ---------------------------------------------------------------------------
// Error shape, bodies, failures
// ---------------------------------------------------------------------------
Deno.test("error shape: {error: {code, message, details?}} as JSON, never internals", async () => {
  const withDetails = toErrorResponse(
    new HttpError(400, "invalid_input", "Invalid.", [{ path: "email" }]),
    "t",
  );
  assert.equal(withDetails.status, 400);
  assert.match(withDetails.headers.get("content-type")!, /^application\/json/);
  assert.deepEqual(await withDetails.json(), {
    error: { code: "invalid_input", message: "Invalid.", details: [{ path: "email" }] },
  });
  const plain = await toErrorResponse(new HttpError(404, "not_found", "Nope."), "t").json();
  assert.deepEqual(Object.keys(plain.error), ["code", "message"]);

  const lines: string[] = [];
  const previous = setLogSink((l) => lines.push(l));
  try {
    const boom = new Error(
      `boom at postgresql://postgres:hunter2@db:5432/postgres with ${SERVICE_KEY}`,
    );
    const res = toErrorResponse(boom, "t");
    assert.equal(res.status, 500);
    const body = await res.json();
    assert.deepEqual(body, { error: { code: "internal_error", message: "Internal error." } });
    // the log line keeps the message, scrubbed
    assert.equal(lines.length, 1);
    assert.ok(!lines[0].includes("hunter2") && !lines[0].includes(SERVICE_KEY), lines[0]);
    assert.ok(!lines[0].includes("    at "), "no stack");
  } finally {
    setLogSink(previous);
  }
});

Deno.test("failures map to 503: database unreachable, timeouts, shutdowns; SQL bugs do not", async () => {
  const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), {
    code: "ECONNREFUSED",
  });
  const pg = (code: string) => Object.assign(new Error("x"), { name: "PostgresError", code });
  for (
    const err of [
      refused,
      pg("57P01"),
      pg("57014"),
      pg("08006"),
      pg("53300"),
      pg("28P01"),
      pg("55P03"),
    ]
  ) {
    assert.equal(isDbUnavailable(err), true, String((err as { code: string }).code));
  }
  for (const err of [pg("23505"), pg("42883"), new Error("x"), null]) {
    assert.equal(isDbUnavailable(err), false);
  }
  const previous = setLogSink(() => {});
  try {
    const res = toErrorResponse(refused, "t");
    assert.equal(res.status, 503);
    assert.equal((await res.json()).error.code, "database_unavailable");
    const auth = toErrorResponse(new AuthUnavailableError(), "t");
    assert.equal(auth.status, 503);
    assert.equal((await auth.json()).error.code, "auth_unavailable");
    const cfg = toErrorResponse(
      new ConfigError(["SUPABASE_URL"], "Configuration error: missing SUPABASE_URL"),
      "t",
    );
    assert.equal(cfg.status, 503);
  } finally {
    setLogSink(previous);
  }
});

Deno.test("bodies: JSON only (415), at most 1 MiB by header or by counted stream (413), valid JSON (400)", async () => {
  const post = (body: BodyInit | null, headers: Record<string, string>) =>
    new Request("http://x/", { method: "POST", body, headers });
  assert.deepEqual(
    await readJson(post('{"a":1}', { "content-type": "application/json; charset=utf-8" })),
    { a: 1 },
  );
  await expectHttpError(
    readJson(post('{"a":1}', { "content-type": "text/plain" })),
    415,
    "unsupported_media_type",
  );
  await expectHttpError(readJson(post('{"a":1}', {})), 415);
  await expectHttpError(
    readJson(post("{nope", { "content-type": "application/json" })),
    400,
    "invalid_json",
  );
  await expectHttpError(
    readJson(post(new Uint8Array([0xff, 0xfe]), { "content-type": "application/json" })),
    400,
  );
  await expectHttpError(
    readJson(
      post("{}", {
        "content-type": "application/json",
        "content-length": String(MAX_BODY_BYTES + 1),
      }),
    ),
    413,
    "payload_too_large",
  );
  // a stream without Content-Length is counted
  const chunk = new Uint8Array(64 * 1024).fill(0x20);
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (sent > MAX_BODY_BYTES + chunk.byteLength) return c.close();
      sent += chunk.byteLength;
      c.enqueue(chunk);
    },
  });
  await expectHttpError(readJson(post(stream, { "content-type": "application/json" })), 413);
  assert.ok(sent <= MAX_BODY_BYTES + 2 * chunk.byteLength, "stopped reading soon after the limit");
  // exactly 1 MiB is fine
  const exact = "[" + " ".repeat(MAX_BODY_BYTES - 2) + "]";
  assert.deepEqual(await readJson(post(exact, { "content-type": "application/json" })), []);
  // an optional body may be empty
  assert.deepEqual(await readJson(post(null, {}), { allowEmpty: true }), {});
  await expectHttpError(readJson(post("", { "content-type": "application/json" })), 400);
});

Deno.test("SQL literals accept only their strict shapes", () => {
  assert.equal(
    literal.uuid("6F1C2A52-1D8E-4A7B-9A55-3C0C3B2F6A11"),
    "'6f1c2a52-1d8e-4a7b-9a55-3c0c3b2f6a11'::uuid",
  );
  assert.equal(literal.bool(true), "true");
  assert.equal(literal.bool(false), "false");
  assert.equal(literal.word("cron"), "'cron'");
  assert.equal(literal.duration("10min"), "'10min'");
  assert.equal(literal.duration("10 min"), "'10min'");
  assert.equal(literal.duration(1500), "'1500'");
  for (
    const bad of ["x'; drop table public.users; --", "6f1c2a52-1d8e-4a7b-9a55-3c0c3b2f6a1", ""]
  ) {
    assert.throws(() => literal.uuid(bad), TypeError);
  }
  for (const bad of ["Cron", "api'", "a b", "1api"]) {
    assert.throws(() => literal.word(bad), TypeError);
  }
  for (const bad of ["1d", "5s; select 1", "-1", "9999999999", "99999999h"]) {
    assert.throws(() => literal.duration(bad), TypeError);
  }
  assert.throws(() => literal.bool("true" as unknown as boolean), TypeError);
});

Deno.test("create-user input: email or phone required, strict fields, validated values", () => {
  assert.equal(
    CreateUserBody.safeParse({ email: "a@example.test", password: "secret1" }).success,
    true,
  );
  assert.equal(CreateUserBody.safeParse({ phone: "+15555550100" }).success, true);
  const bad = [
    {},
    { password: "secret1" },
    { email: "not-an-email" },
    { email: "a@example.test", password: "12345" },
    { email: "a@example.test", role: "Admin!" },
    { email: "a@example.test", avatar_url: "javascript:alert(1)" },
    { email: "a@example.test", name: "a\u0000b" },
    { email: "a@example.test", is_admin: true },
    { email: "a@example.test", email_confirm: "yes" },
  ];
  for (const b of bad) assert.equal(CreateUserBody.safeParse(b).success, false, JSON.stringify(b));
});

// ---------------------------------------------------------------------------
// Logs and the email-domain policy
// ---------------------------------------------------------------------------
Deno.test("logs: one JSON line per event, credentials scrubbed wherever they appear", () => {
  const lines: string[] = [];
  const previous = setLogSink((l) => lines.push(l));
  try {
    log("info", "sync-all", "sync completed", {
      inserted: 2,
      duration_ms: 5,
      password: "hunter2",
      apikey: SERVICE_KEY,
      note:
        `Bearer ${ANON_KEY} and postgresql://postgres:hunter2@h:1/db and ${LOCAL_HOOK_SECRET} sb_secret_abcdef`,
      nested: { access_token: "tok-hunter2", ok: true },
    });
  } finally {
    setLogSink(previous);
  }
  assert.equal(lines.length, 1);
  const rec = JSON.parse(lines[0]);
  assert.equal(rec.level, "info");
  assert.equal(rec.fn, "sync-all");
  assert.equal(rec.event, "sync completed");
  assert.equal(rec.inserted, 2);
  assert.equal(rec.password, "[redacted]");
  assert.equal(rec.nested.access_token, "[redacted]");
  assert.equal(rec.nested.ok, true);
  for (const secret of ["hunter2", SERVICE_KEY, ANON_KEY, "dXNlci1zeW5j", "sb_secret_abcdef"]) {
    assert.ok(!lines[0].includes(secret), `leaked ${secret.slice(0, 12)}`);
  }
  assert.equal(scrub("plain text"), "plain text");
  assert.deepEqual(Object.keys(errorFields(Object.assign(new Error("m"), { code: "X" }))), [
    "error",
    "error_code",
  ]);
});

Deno.test("email-domain policy: deny list, allow list, subdomains, users without email", () => {
  assert.deepEqual(emailPolicy("a@example.test", [], []), { allowed: true });
  assert.deepEqual(emailPolicy("a@Spam.Test", [], ["spam.test"]), {
    allowed: false,
    reason: "denied_domain",
    domain: "spam.test",
  });
  assert.equal(emailPolicy("a@mail.spam.test", [], ["spam.test"]).allowed, false);
  assert.equal(emailPolicy("a@notspam.test", [], ["spam.test"]).allowed, true);
  assert.equal(emailPolicy("a@corp.example", ["corp.example"], []).allowed, true);
  assert.equal(emailPolicy("a@eu.corp.example", ["corp.example"], []).allowed, true);
  assert.deepEqual(emailPolicy("a@gmail.test", ["corp.example"], []), {
    allowed: false,
    reason: "domain_not_allowed",
    domain: "gmail.test",
  });
  assert.equal(
    emailPolicy("a@x.corp.example", ["corp.example"], ["x.corp.example"]).allowed,
    false,
  );
  assert.equal(emailPolicy(null, ["corp.example"], []).allowed, true);
  assert.equal(emailPolicy("", ["corp.example"], []).allowed, true);
});

Deno.test("local keys are the Supabase CLI's demo keys (HS256 with the local JWT secret)", () => {
  assert.equal(
    ANON_KEY,
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6ImFub24iLCJleHAiOjE5ODM4MTI5OTZ9.CRXP1A7WOeoJeXxjNni43kdQwgnWNReilDMblYTn_I0",
  );
  assert.equal(
    SERVICE_KEY,
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6InNlcnZpY2Vfcm9sZSIsImV4cCI6MTk4MzgxMjk5Nn0.EGIM96RAZx35lJzdJsyH-qQwv8Hdp7fsn3W0YpN81IU",
  );
});

// ---------------------------------------------------------------------------
// Issue 11: ids, hostile profile values, token claims, configuration
// ---------------------------------------------------------------------------
// Ids Postgres and Auth accept that RFC 4122 (zod's z.uuid()) does not: no version,
// no variant, all zeros, upper case.
const NON_RFC_UUIDS = [
  "11111111-1111-1111-1111-111111111111",
  "00000000-0000-0000-0000-000000000000",
  "ffffffff-ffff-ffff-ffff-ffffffffffff",
  "D0000000-0000-0000-0000-00000000000A",
];

Deno.test("every uuid Postgres accepts works: hook payloads, Database Webhooks, SQL literals, the caller check", async () => {
  for (const id of NON_RFC_UUIDS) {
    assert.ok(Uuid.safeParse(id).success, id);
    assert.ok(
      CustomAccessTokenPayload.safeParse({ user_id: id, claims: { sub: id } }).success,
      `custom_access_token for ${id}`,
    );
    assert.ok(
      DatabaseWebhookPayload.safeParse({
        type: "UPDATE",
        table: "users",
        schema: "auth",
        record: { id },
        old_record: { id },
      }).success,
      `Database Webhook for ${id}`,
    );
    assert.equal(literal.uuid(id), `'${id.toLowerCase()}'::uuid`);
    const token = await userToken({ sub: id });
    const caller = await identifyCaller(
      req({ authorization: `Bearer ${token}` }),
      deps({}, { rows: [{ role: "admin" }] }),
    );
    assert.deepEqual(caller, { kind: "user", userId: id, role: "admin", isAdmin: true });
  }
  assert.ok(BeforeUserCreatedPayload.safeParse({ metadata: {}, user: { id: NON_RFC_UUIDS[0] } }).success);
  for (const bad of ["1111111-1111-1111-1111-111111111111", "not-a-uuid", "", "{11111111-1111}"]) {
    assert.equal(Uuid.safeParse(bad).success, false, bad);
  }
});

Deno.test("caller: a user JWT without exp, or for another audience, is 401", async () => {
  const sign = (claims: Record<string, unknown>) =>
    new SignJWT({ role: "authenticated", sub: USER_ID, ...claims })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .sign(new TextEncoder().encode(LOCAL_JWT_SECRET));
  const admin = deps({}, { rows: [{ role: "admin" }] });
  const noExp = await sign({ aud: "authenticated" });
  const noAud = await sign({ exp: Math.floor(Date.now() / 1000) + 3600 });
  const otherAud = await sign({ aud: "anon", exp: Math.floor(Date.now() / 1000) + 3600 });
  for (const token of [noExp, noAud, otherAud]) {
    await expectHttpError(
      identifyCaller(req({ authorization: `Bearer ${token}` }), admin),
      401,
      "invalid_token",
    );
  }
  // aud as a list that names authenticated is fine
  const listed = await sign({
    aud: ["authenticated", "other"],
    exp: Math.floor(Date.now() / 1000) + 3600,
  });
  assert.equal(
    (await identifyCaller(req({ authorization: `Bearer ${listed}` }), admin)).kind,
    "user",
  );
  // the same rules when Auth vouches for the token (no JWT secret configured)
  const vouching = deps({ jwtSecret: undefined }, {
    rows: [{ role: "admin" }],
    fetch: () => Promise.resolve(Response.json({ id: USER_ID, role: "authenticated" })),
  });
  await expectHttpError(
    identifyCaller(req({ authorization: `Bearer ${noExp}` }), vouching),
    401,
    "invalid_token",
  );
});

Deno.test("the reconcile timeout: the configuration accepts exactly what db.ts sends to Postgres", () => {
  const candidates = [
    "10min", "600s", "600000", "10 min", "0", "2147483647", "2147483648", "9999999999",
    "99999999h", "596h", "597h", "1d", "-1", "5s; select 1", "1.5s", "10MIN", "",
  ];
  for (const text of candidates) {
    let configured: string | null = null;
    try {
      configured = loadConfig({ ...BASE_ENV, USER_SYNC_RECONCILE_STATEMENT_TIMEOUT: text })
        .reconcileStatementTimeout;
    } catch (err) {
      assert.ok(err instanceof ConfigError, text);
      assert.deepEqual(err.variables, ["USER_SYNC_RECONCILE_STATEMENT_TIMEOUT"], text);
    }
    if (text === "") continue; // unset: the default
    let sent: string | null = null;
    try {
      sent = literal.duration(text);
    } catch {
      sent = null;
    }
    assert.equal(configured !== null, sent !== null, `${text}: config and db.ts agree`);
    if (configured !== null) assert.equal(literal.duration(configured), sent, text);
  }
  assert.equal(postgresDuration("2147483648"), null, "beyond Postgres' int of milliseconds");
  assert.equal(postgresDuration("596h"), "596h");
  assert.equal(postgresDuration("597h"), null);
});

// Values a user could give themselves, refused by the database for a Data API edit
// (supabase/tests/08-profile-edits.test.sql) and by create-user with a 400.
export const HOSTILE_NAMES = [
  "Admin\u202e", "\u202eevil", "a\u2066b", "zero\u200bwidth", "joiner\u200d", "word\u2060joiner",
  "line\u2028sep", "para\u2029sep", "\ufeffBOM", "bell\u0007", "del\u007f", "c1\u0085",
  "tab\tinside",
];
export const HOSTILE_AVATARS = [
  'https://x.example/a.png"onerror="alert(1)', "https://x.example/a.png'", "https://x.example/<script>",
  "https://x.example/a>b", "https://x.example/a b", "javascript:alert(1)", "data:image/png;base64,AA",
  "https://x.example/\u0000", "//x.example/a.png",
];

Deno.test("create-user input: hostile names and avatar URLs are refused", () => {
  for (const name of HOSTILE_NAMES) {
    assert.equal(ProfileName.safeParse(name).success, false, JSON.stringify(name));
    assert.equal(
      CreateUserBody.safeParse({ email: "a@example.test", name }).success,
      false,
      JSON.stringify(name),
    );
  }
  for (const name of ["   ", "\u3000", "x".repeat(1001)]) {
    assert.equal(ProfileName.safeParse(name).success, false, JSON.stringify(name));
  }
  for (const url of HOSTILE_AVATARS) {
    assert.equal(AvatarUrl.safeParse(url).success, false, url);
  }
  // what a real profile looks like passes (surrounding spaces are trimmed)
  assert.equal(ProfileName.parse("  Zoë O\u2019Brien-Łukasz 山田 "), "Zoë O\u2019Brien-Łukasz 山田");
  assert.ok(AvatarUrl.safeParse("https://lh3.googleusercontent.com/a/AC-x_y=s96-c?sz=1&v=%20").success);
});
