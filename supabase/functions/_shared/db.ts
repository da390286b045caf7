// The database client: postgres.js on SUPABASE_DB_URL (or USER_SYNC_DB_POOLER_URL),
// `prepare: false` so it also works through the transaction pooler. One small pool
// per function instance, created on first use.
import postgres from "postgres";
import { log } from "./log.ts";
import { postgresDuration, UUID_PATTERN } from "./validation.ts";

export type Sql = postgres.Sql<Record<string, never>>;
export type TransactionSql = postgres.TransactionSql<Record<string, never>>;

export function createSql(url: string, fn: string): Sql {
  return postgres(url, {
    prepare: false,
    max: 4,
    idle_timeout: 20,
    connect_timeout: 5,
    max_lifetime: 30 * 60,
    connection: { application_name: `user-sync:${fn}` },
    // Notices (e.g. reconcile's WARNINGs) become log lines instead of console noise.
    onnotice: (notice) =>
      log("warn", fn, "database notice", {
        sqlstate: notice.code,
        message: notice.message,
      }),
  }) as unknown as Sql;
}

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
]);

/** SQLSTATE classes and codes that mean "the database can't serve us right now". */
function unavailableSqlState(code: string): boolean {
  return code.startsWith("08") || // connection exception
    code.startsWith("53") || // insufficient resources (too many connections, ...)
    code.startsWith("57") || // operator intervention: admin shutdown, statement timeout
    code.startsWith("28") || // invalid authorization (wrong DB password): unusable DB
    code === "3D000" || // database does not exist
    code === "55P03" || // lock not available (lock_timeout)
    code === "40001" || code === "40P01"; // serialization failure / deadlock: retry later
}

/** Whether an error means the database is unreachable, overloaded or went away. */
export function isDbUnavailable(err: unknown): boolean {
  if (!err || typeof err !== "object") return false;
  const e = err as { name?: string; code?: unknown };
  const code = typeof e.code === "string" ? e.code : "";
  if (e.name === "PostgresError") return unavailableSqlState(code);
  if (NETWORK_CODES.has(code)) return true;
  // Deno's own network errors
  return e.name === "ConnectionRefused" || e.name === "ConnectionReset" ||
    e.name === "TimedOut" || e.name === "NotConnected" || e.name === "BrokenPipe";
}

/** SQLSTATE of a PostgresError, if any. */
export function sqlState(err: unknown): string | null {
  if (err && typeof err === "object" && (err as { name?: string }).name === "PostgresError") {
    const code = (err as { code?: unknown }).code;
    return typeof code === "string" ? code : null;
  }
  return null;
}

// ---------------------------------------------------------------------------
// Transactions in one round trip
// ---------------------------------------------------------------------------
/**
 * SQL literals for the few values `transaction` statements carry. Each accepts only
 * a strict shape (checked here, whatever the caller validated), so nothing else can
 * ever be spliced into SQL text.
 */
export const literal = {
  uuid(value: string): string {
    if (!UUID_PATTERN.test(value)) throw new TypeError("literal.uuid: not a uuid");
    return `'${value.toLowerCase()}'::uuid`;
  },
  bool(value: boolean): string {
    if (typeof value !== "boolean") throw new TypeError("literal.bool: not a boolean");
    return value ? "true" : "false";
  },
  /** A whole number (e.g. a time budget in milliseconds). */
  int(value: number): string {
    if (!Number.isSafeInteger(value)) throw new TypeError("literal.int: not an integer");
    return String(value);
  },
  /** Lower-case words such as a run source (`cron`, `api`, `admin`). */
  word(value: string): string {
    if (!/^[a-z][a-z0-9_-]{0,39}$/.test(value)) throw new TypeError("literal.word: not a word");
    return `'${value}'`;
  },
  /** A Postgres duration (validation.ts: the rule the configuration is checked by). */
  duration(value: string | number): string {
    const text = postgresDuration(value);
    if (text === null) throw new TypeError("literal.duration: not a duration");
    return `'${text}'`;
  },
};

/**
 * Runs `statements` as one transaction with a local statement_timeout, sent as a
 * single simple-protocol query: one round trip, nothing held between statements,
 * and no client-side transaction state. (postgres.js's sql.begin() sends ROLLBACK
 * after a failure; on a connection the server has just closed, postgres.js 3.4.9
 * then throws an uncaught TypeError from a timer under Deno, which would take the
 * whole function down. A dead connection here only fails this call.)
 * Interpolate values only through `literal`. Answers the rows of each statement.
 */
export async function transaction(
  sql: Sql,
  statementTimeout: string | number,
  statements: string[],
): Promise<Record<string, unknown>[][]> {
  const text = [
    `set local statement_timeout = ${literal.duration(statementTimeout)}`,
    ...statements,
  ].join(";\n");
  const results = await sql.unsafe(text) as unknown as Record<string, unknown>[][];
  return results.slice(1).map((rows) => [...rows]);
}
