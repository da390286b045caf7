// Shared helpers of the Edge Function tests: a local stack per test file, a
// `postgres` connection to inspect the database, captured log lines, signed hook
// requests and a few user factories.
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import assert from "node:assert/strict";
import { setLogSink } from "../../supabase/functions/_shared/log.ts";
import { signWebhook } from "../../supabase/functions/_shared/webhook_signature.ts";
import {
  type LocalStack,
  type LocalStackOptions,
  startLocalStack,
} from "../../platform/gateway.ts";
import { connect, type Sql } from "../_support/db.ts";

export type { Sql };

// ---------------------------------------------------------------------------
// Captured output: every function log line, and whatever else is printed.
// ---------------------------------------------------------------------------
export const captured: string[] = [];
const verbose = Deno.env.get("USER_SYNC_TEST_VERBOSE") === "1";
// scripts/test.sh collects every captured line of the run here, for its scan of the
// whole run's logs for secrets (tests/reliability/log-scan.ts).
const runLog = Deno.env.get("USER_SYNC_TEST_LOG");
function capture(line: string): void {
  captured.push(line);
  if (runLog) {
    try {
      Deno.writeTextFileSync(runLog, `${line}\n`, { append: true });
    } catch {
      // the scan will notice the file is missing
    }
  }
}
setLogSink((line) => {
  capture(line);
  if (verbose) console.error(line);
});
for (const method of ["log", "info", "warn", "error", "debug"] as const) {
  const original = console[method].bind(console);
  console[method] = (...args: unknown[]) => {
    capture(args.map((a) => (typeof a === "string" ? a : Deno.inspect(a))).join(" "));
    if (verbose || method === "error") original(...args);
  };
}

/** Log lines (parsed) of one function, optionally one event. */
export function logLines(fn?: string, event?: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of captured) {
    try {
      const rec = JSON.parse(line);
      if (
        rec && typeof rec === "object" && (!fn || rec.fn === fn) && (!event || rec.event === event)
      ) {
        out.push(rec);
      }
    } catch {
      // not a JSON line
    }
  }
  return out;
}

/** Every password a test sends (checked against the logs at the end). */
export const passwordsUsed = new Set<string>();
export function password(): string {
  const p = `pw-${crypto.randomUUID()}`;
  passwordsUsed.add(p);
  return p;
}

/** No key, token, secret or password anywhere in the captured output. */
export function assertNoSecretsLogged(stack: LocalStack): void {
  const secrets = [
    stack.anonKey,
    stack.serviceRoleKey,
    stack.jwtSecret,
    stack.hookSecret,
    stack.hookSecret.replace(/^v1,/, ""),
    stack.hookSecret.replace(/^v1,whsec_/, ""),
    ...stack.auth.issuedTokens,
    ...passwordsUsed,
  ];
  assert.ok(captured.length > 0, "the run produced log lines");
  for (const line of captured) {
    for (const secret of secrets) {
      assert.ok(!line.includes(secret), `a log line contains a secret: ${line.slice(0, 120)}…`);
    }
    assert.ok(
      !/postgres(ql)?:\/\/[^\s:/@]+:[^\s@\[]+@/.test(line),
      `a log line contains a DB password: ${line.slice(0, 120)}`,
    );
    assert.ok(
      !/eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/.test(line),
      `a log line contains a JWT: ${line.slice(0, 120)}`,
    );
    assert.ok(
      !/"stack"|\n\s+at /.test(line),
      `a log line contains a stack trace: ${line.slice(0, 120)}`,
    );
  }
}

// ---------------------------------------------------------------------------
// Stack per test file
// ---------------------------------------------------------------------------
export interface TestStack {
  stack(): Promise<LocalStack>;
  db(): Sql;
  close(): Promise<void>;
}

export function testStack(options: LocalStackOptions = {}): TestStack {
  let started: Promise<LocalStack> | undefined;
  let sql: Sql | undefined;
  return {
    stack: () => (started ??= startLocalStack({ port: 0, ...options })),
    db: () => (sql ??= connect("postgres", { url: options.dbUrl, max: 4, app: "user-sync-tests" })),
    async close() {
      if (started) await (await started).close();
      if (sql) await sql.end({ timeout: 2 });
    },
  };
}

/** Options for integration tests that share pools across tests. */
export const integration = { sanitizeOps: false, sanitizeResources: false } as const;

/**
 * Registers a file's closing test: everything its tests logged holds no key, token
 * or password. Call it last, after the file's other tests; it closes the stack.
 */
export function testNoSecretsLogged(t: TestStack, fn: string): void {
  Deno.test({
    ...integration,
    name: `${fn} logs contain no key, token or password`,
    async fn() {
      const stack = await t.stack();
      try {
        assertNoSecretsLogged(stack);
      } finally {
        await t.close();
      }
    },
  });
}

export function client(stack: LocalStack, key: "anon" | "service" = "anon"): SupabaseClient {
  return createClient(stack.url, key === "anon" ? stack.anonKey : stack.serviceRoleKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  });
}

export function uniqueEmail(prefix = "user", domain = "example.test"): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 13)}@${domain}`;
}

export interface TestUser {
  id: string;
  email: string;
  password: string;
  accessToken: string;
  client: SupabaseClient;
}

/** A signed-up, signed-in user; role set through app_metadata by the service role. */
export async function signedInUser(
  stack: LocalStack,
  role?: string,
  domain = "example.test",
): Promise<TestUser> {
  const email = uniqueEmail(role ?? "user", domain);
  const pw = password();
  const service = client(stack, "service");
  const created = await service.auth.admin.createUser({
    email,
    password: pw,
    email_confirm: true,
    app_metadata: role ? { role } : undefined,
  });
  if (created.error) throw created.error;
  const c = client(stack);
  const { data, error } = await c.auth.signInWithPassword({ email, password: pw });
  if (error || !data.session) throw error ?? new Error("no session");
  return {
    id: created.data.user!.id,
    email,
    password: pw,
    accessToken: data.session.access_token,
    client: c,
  };
}

/** Raw fetch of a function through the gateway. */
export async function call(
  stack: LocalStack,
  fn: string,
  init: RequestInit & { json?: unknown } = {},
  // deno-lint-ignore no-explicit-any -- JSON answers, inspected freely by tests
): Promise<{ status: number; body: any; headers: Headers; ms: number }> {
  const headers = new Headers(init.headers);
  let body = init.body;
  if (init.json !== undefined) {
    headers.set("content-type", "application/json");
    body = JSON.stringify(init.json);
  }
  const t0 = performance.now();
  const res = await fetch(`${stack.url}/functions/v1/${fn}`, { ...init, headers, body });
  const text = await res.text();
  const ms = performance.now() - t0;
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // keep text
  }
  return { status: res.status, body: parsed, headers: res.headers, ms };
}

export function serviceHeaders(stack: LocalStack): Record<string, string> {
  return { apikey: stack.serviceRoleKey, authorization: `Bearer ${stack.serviceRoleKey}` };
}

export function userHeaders(stack: LocalStack, token: string): Record<string, string> {
  return { apikey: stack.anonKey, authorization: `Bearer ${token}` };
}

/** Headers of a request signed as Supabase Auth signs its hooks. */
export function signedHeaders(
  secret: string,
  body: string,
  opts: { id?: string; timestamp?: number; signature?: string } = {},
): Record<string, string> {
  const id = opts.id ?? `msg_${crypto.randomUUID()}`;
  const timestamp = opts.timestamp ?? Math.floor(Date.now() / 1000);
  return {
    "content-type": "application/json",
    "webhook-id": id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": opts.signature ?? signWebhook(secret, id, timestamp, body),
  };
}

/** A port nothing listens on (bound, then released). */
export function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** A database URL on a port nothing listens on. */
export function unreachableDbUrl(): string {
  return `postgresql://postgres:postgres@127.0.0.1:${closedPort()}/postgres`;
}

// deno-lint-ignore no-explicit-any -- claims of any shape
export function decodeJwt(token: string): Record<string, any> {
  const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
}

/** Deletes a user's profile behind the trigger's back (the auth user stays). */
export async function dropProfile(db: Sql, id: string): Promise<void> {
  await db`delete from public.users where id = ${id}`;
}

export async function profileExists(db: Sql, id: string): Promise<boolean> {
  return (await db`select 1 from public.users where id = ${id}`).length === 1;
}

/** Holds an ACCESS EXCLUSIVE lock on public.users on its own connection until released. */
export async function lockUsersTable(
  db: Sql,
  table: "public.users" | "auth.users" = "public.users",
): Promise<() => Promise<void>> {
  const conn = await db.reserve();
  await conn`begin`;
  await conn.unsafe(`lock table ${table} in access exclusive mode`);
  return async () => {
    await conn`rollback`;
    conn.release();
  };
}

// deno-lint-ignore no-explicit-any -- a JSON answer of unknown shape
export function assertErrorShape(body: any, status: number, code?: string): void {
  assert.equal(typeof body, "object", `status ${status}: body is JSON`);
  assert.equal(typeof body.error?.code, "string", `status ${status}: error.code present`);
  assert.equal(typeof body.error?.message, "string", `status ${status}: error.message present`);
  if (code) assert.equal(body.error.code, code);
  const text = JSON.stringify(body);
  assert.ok(!/\n\s+at |stack/i.test(text), "no stack trace in an error answer");
}
