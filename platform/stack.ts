// The whole local system, as `npm start` runs it and as the end-to-end test starts it:
// the gateway on :54321 (the three functions under /functions/v1/<name> and the Auth
// stand-in under /auth/v1), the pg_net sender that delivers what the real `user-sync`
// pg_cron job queues, and the Vault secrets that job reads (project URL + secret key).
// The database itself is started by scripts/db.sh (see scripts/start.sh).
import postgres from "postgres";
import { startLocalStack, type LocalStack } from "./gateway.ts";
import { localDbUrl, withCredentials } from "./local.ts";
import { startNetSender } from "./net-sender.ts";
import { startDashboardServer } from "./dashboard-server.ts";

export interface Stack {
  api: LocalStack;
  /** Superuser connection for the platform side (pg_net sender). */
  adminDbUrl: string;
  close(): Promise<void>;
}

export interface StackOptions {
  /** postgres@... URL (default: SPEC §5 with USER_SYNC_DB_PORT). */
  dbUrl?: string;
  /** API port; 0 picks a free one (default USER_SYNC_API_PORT or 54321). */
  port?: number;
  /** One JSON log line per pg_net delivery. */
  logNet?: boolean;
}

/** Creates or updates a Vault secret by name (as postgres, like the SQL editor would). */
export async function upsertVaultSecret(sql: postgres.Sql, name: string, value: string): Promise<void> {
  const [row] = await sql`select id from vault.secrets where name = ${name}`;
  if (row) await sql`select vault.update_secret(${row.id}, ${value})`;
  else await sql`select vault.create_secret(${value}, ${name})`;
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const dbUrl = options.dbUrl ?? localDbUrl();
  const adminDbUrl = withCredentials(dbUrl, "supabase_admin", "postgres");
  const api = await startLocalStack({ dbUrl, port: options.port });
  const sql = postgres(dbUrl, { max: 1, prepare: false, onnotice: () => {} });
  try {
    // What a developer does once per project (README "Scheduled healing").
    await upsertVaultSecret(sql, "user_sync_project_url", api.url);
    await upsertVaultSecret(sql, "user_sync_secret_key", api.serviceRoleKey);
  } finally {
    await sql.end();
  }
  const sender = startNetSender({
    dbUrl: adminDbUrl,
    onResponse: options.logNet
      ? (r) => console.log(JSON.stringify({ level: r.error ? "warn" : "info", fn: "pg_net", event: "request delivered", ...r }))
      : undefined,
  });
  return {
    api,
    adminDbUrl,
    async close() {
      await sender.stop();
      await api.close();
    },
  };
}

// ---- npm start ---------------------------------------------------------------------
async function main(): Promise<void> {
  const stack = await startStack({ logNet: true });
  const { api } = stack;
  const dashboard = startDashboardServer({ config: { supabaseUrl: api.url, anonKey: api.anonKey } });
  console.log(`
User Sync for Supabase — local stack (development-only values, never valid in production)

  API            ${api.url}
  Dashboard      ${dashboard.url}
  Functions      ${api.url}/functions/v1/{sync-all,create-user,auth-webhook}
  Auth stand-in  ${api.url}/auth/v1
  Database       ${api.dbUrl}
  JWT secret     ${api.jwtSecret}
  anon key       ${api.anonKey}
  service_role   ${api.serviceRoleKey}
  Hook secret    ${api.hookSecret}

  Try:  curl -s -H "Authorization: Bearer ${api.serviceRoleKey.slice(0, 12)}..." ${api.url}/functions/v1/sync-all
        npm run seed -- --users 1000
  pg_cron job 'user-sync' calls sync-all every 5 minutes. Ctrl-C stops everything.
`);

  // What a deployer does once after installing (README "Deploying"): heal every existing
  // user now rather than at the cron job's first run, so the mirror and health are
  // current from the start. In the background; a large database continues at the next
  // cron run (sync-all stops at its budget).
  fetch(`${api.url}/functions/v1/sync-all`, {
    method: "POST",
    headers: { Authorization: `Bearer ${api.serviceRoleKey}`, "content-type": "application/json" },
    body: "{}",
  }).then((res) => res.body?.cancel()).catch(() => {});

  const sql = postgres(api.dbUrl, { max: 1, prepare: false, onnotice: () => {} });
  const tty = Deno.stdout.isTerminal();
  let stopping = false;
  let lastLine = "";
  // user_sync.health(): "health ok", or the problem codes (README "Troubleshooting" maps each to its fix).
  const healthText = (h?: { ok?: boolean; problems?: { code: string }[] }) =>
    !h ? "health unknown" : h.ok ? "health ok" : `HEALTH: ${(h.problems ?? []).map((p) => p.code).join(", ")}`;
  const tick = async () => {
    if (stopping) return;
    let line: string;
    try {
      const [{ s }] = await sql`select user_sync.status() as s`;
      const run = s.last_run
        ? `last run #${s.last_run.run_id} ${s.last_run.source} ${s.last_run.status} ${s.last_run.finished_at ?? ""}`.trim()
        : "no run yet";
      line = `status: ${s.auth_users} auth users, ${s.profiles} profiles, ` +
        `drift ${s.missing} missing / ${s.drifted} drifted / ${s.orphaned} orphaned, ` +
        `${s.open_errors} open errors, ${run}, ${healthText(s.health)}` +
        (s.heal ? `, heal ${s.heal.examined} of ${s.heal.total ?? "?"} examined` : "");
    } catch (e) {
      line = `status: database unreachable (${e instanceof Error ? e.message : e})`;
    }
    if (tty) {
      await Deno.stdout.write(new TextEncoder().encode(`\r\x1b[2K${line}`));
    } else if (line !== lastLine) {
      console.log(line);
    }
    lastLine = line;
  };
  // One status() at a time, at most every 2 s, and never sooner than three times as long as
  // the last one took (it is a scan of every user: seconds once `npm run seed` made millions).
  let timer: ReturnType<typeof setTimeout> | undefined;
  const loop = async () => {
    const started = Date.now();
    await tick();
    if (!stopping) timer = setTimeout(loop, Math.max(2000, 3 * (Date.now() - started)));
  };
  await loop();

  const stop = async () => {
    if (stopping) return;
    stopping = true;
    clearTimeout(timer);
    if (tty) console.log("");
    console.log("stopping…");
    await dashboard.close();
    await stack.close();
    await sql.end({ timeout: 2 });
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}

if (import.meta.main) await main();
