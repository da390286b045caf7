// Helpers shared by the reliability suites (faults, concurrency, hostile input,
// attacks): the database as a superuser, table fingerprints that prove "no write",
// the one place figures are printed, and run-size knobs read from the environment.
import { connect, type Sql } from "../_support/db.ts";

export type { Sql };
export { sleep, waitFor } from "../_support/wait.ts";

/** An integer from the environment (tests scale with USER_SYNC_* knobs). */
export function envInt(name: string, fallback: number): number {
  const raw = Deno.env.get(name);
  if (raw === undefined || raw.trim() === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a whole number, got ${raw}`);
  return n;
}

/** Property runs per property (USER_SYNC_PROPERTY_RUNS raises them). */
export const PROPERTY_RUNS = envInt("USER_SYNC_PROPERTY_RUNS", 100);

/** Superuser connection (supabase_admin): what pgTAP and the platform side use. */
export function adminDb(max = 4): Sql {
  return connect("supabase_admin", { max, app: "user-sync-reliability" });
}

/**
 * A fingerprint of every table a request could write: row counts and an
 * order-independent hash of every row. Equal before and after = nothing was written.
 */
export async function fingerprint(sql: Sql): Promise<Record<string, string>> {
  const [row] = await sql<Record<string, string>[]>`
    select
      (select count(*) || ':' || coalesce(sum(hashtextextended(t::text, 0)), 0) from auth.users t) as auth_users,
      (select count(*) || ':' || coalesce(sum(hashtextextended(t::text, 0)), 0) from auth.identities t) as identities,
      (select count(*) || ':' || coalesce(sum(hashtextextended(t::text, 0)), 0) from public.users t) as profiles,
      (select count(*) || ':' || coalesce(sum(hashtextextended(t::text, 0)), 0) from user_sync.runs t) as runs,
      (select count(*) || ':' || coalesce(sum(hashtextextended(t::text, 0)), 0) from user_sync.errors t) as errors`;
  return { ...row };
}

/** user_sync.status() as the service role sees it. */
export async function syncStatus(sql: Sql): Promise<{
  auth_users: number;
  profiles: number;
  missing: number;
  orphaned: number;
  drifted: number;
  open_errors: number;
}> {
  const [{ s }] = await sql`select user_sync.status() as s`;
  return s as never;
}

/** Prints the closing figures of a suite as one JSON line on stderr (never captured). */
export function figures(suite: string, data: Record<string, unknown>): void {
  const line = JSON.stringify({ figures: suite, ...data });
  Deno.stderr.writeSync(new TextEncoder().encode(`${line}\n`));
  const file = Deno.env.get("USER_SYNC_FIGURES_FILE");
  if (file) Deno.writeTextFileSync(file, `${line}\n`, { append: true });
}

/** Stack-trace and internals patterns that must never reach an answer. */
export const STACK_TRACE = [
  /\n\s+at /,
  /\bat [\w.<>$]+ \(.*:\d+:\d+\)/,
  /\b(file|ext|node):\/\//,
  /\b[A-Z]\w*Error: /,
  /"stack"\s*:/,
  /PostgresError|postgres\.js|node_modules/,
];

export function assertNoInternals(text: string, where: string): void {
  for (const re of STACK_TRACE) {
    if (re.test(text)) throw new Error(`${where} shows internals (${re}): ${text.slice(0, 300)}`);
  }
}
