// Connections and timing helpers for the benchmark (postgres.js over TCP).
import postgres from "postgres";
import { readFileSync } from "node:fs";

export type Sql = ReturnType<typeof postgres>;

export interface DbConfig {
  host: string;
  port: number;
  database: string;
  password: string;
}

export function connect(cfg: DbConfig, user: string, opts: Record<string, unknown> = {}): Sql {
  return postgres({
    host: cfg.host,
    port: cfg.port,
    database: cfg.database,
    username: user,
    password: cfg.password,
    max: 1,
    onnotice: () => {},
    connection: { application_name: "user-sync-bench" },
    ...opts,
  });
}

const CLK_TCK = 100; // Linux USER_HZ

/** CPU seconds (user + system) used so far by a process, from /proc. */
export function procCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** Resident set size of a process in bytes (VmRSS), from /proc. */
export function procRssBytes(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = status.match(/^VmRSS:\s+(\d+)\s+kB/m);
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

export interface Timing {
  ms: number; // wall-clock milliseconds
  cpuMs: number; // server backend CPU milliseconds (user + system)
}

/** Runs fn on a dedicated backend and reports wall time and that backend's CPU time. */
export async function timed<T>(
  backendPid: number,
  fn: () => Promise<T>,
): Promise<Timing & { value: T }> {
  const cpu0 = procCpuSeconds(backendPid);
  const t0 = performance.now();
  const value = await fn();
  const ms = performance.now() - t0;
  const cpuMs = (procCpuSeconds(backendPid) - cpu0) * 1000;
  return { ms, cpuMs, value };
}

export async function backendPid(sql: Sql): Promise<number> {
  const [{ pid }] = await sql`select pg_backend_pid() as pid`;
  return pid as number;
}

export function median(xs: number[]): number {
  const s = [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * One e-mail sign-up as GoTrue writes it (one autocommitted INSERT into auth.users, so
 * the triggers on it run as on the platform). `auth` is a connection as
 * supabase_auth_admin with search_path auth.
 */
export async function signUp(auth: Sql, id: string, email: string, fullName: string): Promise<void> {
  const now = new Date().toISOString();
  await auth`
    insert into users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
      raw_app_meta_data, raw_user_meta_data, created_at, updated_at, confirmation_token, is_sso_user, is_anonymous)
    values ('00000000-0000-0000-0000-000000000000', ${id}, 'authenticated', 'authenticated', ${email},
      '$2a$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234', ${now},
      ${auth.json({ provider: "email", providers: ["email"] })},
      ${auth.json({ sub: id, email, email_verified: true, phone_verified: false, full_name: fullName })},
      ${now}, ${now}, '', false, false)`;
}
