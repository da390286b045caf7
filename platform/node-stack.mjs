// LOCAL PLATFORM (development and tests only; never deployed): the local system as
// `npm start` runs it (scripts/start.sh: database, migrations, gateway, pg_net sender, the
// dashboard's static build on its own port), started from Node on spare ports with its own
// data directory, and Debian's Chromium as the browser tests and the dashboard benchmark
// drive it (playwright-core runs on Node, so this file is plain JavaScript).
import { execFileSync, spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdirSync, openSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const OUT_DIR = join(ROOT, ".local/dashboard-test");
const JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long";

/** A TCP port nothing listens on right now. */
export async function sparePort() {
  return await new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const b64url = (s) => Buffer.from(s).toString("base64url");

/** The local API keys, as platform/local.ts makes them (HS256, the CLI's local secret). */
export function apiKey(role) {
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify({ iss: "supabase-demo", role, exp: 1983812996 }));
  const sig = createHmac("sha256", JWT_SECRET).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

/** The claims of a JWT (not verified: the caller got it from Auth itself). */
export function claims(token) {
  return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8"));
}

async function waitFor(what, fn, timeoutMs) {
  const until = Date.now() + timeoutMs;
  let last;
  while (Date.now() < until) {
    try {
      if (await fn()) return;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

/**
 * Starts `bash scripts/start.sh --fresh` on spare ports, data in `scripts/db.sh datadir
 * <name>-pgdata` (.local/, or outside a checkout the cluster's OS user cannot reach). Its
 * output (which prints the local keys, as npm start does) goes to
 * .local/dashboard-test/<name>-stack.log, never to the test log.
 */
export async function startStack({ refreshMs = "1500", name = "dashboard-test" } = {}) {
  mkdirSync(OUT_DIR, { recursive: true });
  const [dbPort, apiPort, dashboardPort] = [await sparePort(), await sparePort(), await sparePort()];
  const log = openSync(join(OUT_DIR, `${name}-stack.log`), "w");
  const env = {
    ...process.env,
    USER_SYNC_DB_PORT: String(dbPort),
    USER_SYNC_API_PORT: String(apiPort),
    USER_SYNC_DASHBOARD_PORT: String(dashboardPort),
    USER_SYNC_PGDATA: execFileSync("bash", [join(ROOT, "scripts/db.sh"), "datadir", `${name}-pgdata`])
      .toString().trim(),
    USER_SYNC_DASHBOARD_REFRESH_MS: refreshMs,
  };
  delete env.USER_SYNC_DB_URL;
  const child = spawn("bash", [join(ROOT, "scripts/start.sh"), "--fresh"], {
    cwd: ROOT,
    env,
    detached: true,
    stdio: ["ignore", log, log],
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const stack = {
    apiUrl: `http://127.0.0.1:${apiPort}`,
    dashboardUrl: `http://127.0.0.1:${dashboardPort}`,
    dbUrl: `postgresql://supabase_admin:postgres@127.0.0.1:${dbPort}/postgres`,
    anonKey: apiKey("anon"),
    serviceKey: apiKey("service_role"),
    /** One SQL statement as supabase_admin (behind the system's back); its rows, tab-separated. */
    sql(statement) {
      return execFileSync("psql", [this.dbUrl, "-v", "ON_ERROR_STOP=1", "-Atc", statement], { encoding: "utf8" }).trim();
    },
    /** The functions' answer for the secret key (what the cron job sees). */
    async call(path, init = {}) {
      const res = await fetch(`${this.apiUrl}/functions/v1/${path}`, {
        ...init,
        headers: { authorization: `Bearer ${this.serviceKey}`, "content-type": "application/json", ...init.headers },
      });
      const body = await res.json();
      if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${JSON.stringify(body)}`);
      return body;
    },
    async stop() {
      if (child.exitCode === null) {
        try {
          process.kill(-child.pid, "SIGTERM");
        } catch {
          // already gone
        }
        const timer = setTimeout(() => {
          try {
            process.kill(-child.pid, "SIGKILL");
          } catch {
            // gone
          }
        }, 20_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
  try {
    await Promise.race([
      waitFor(`the stack (see .local/dashboard-test/${name}-stack.log)`, async () => {
        const page = await fetch(`${stack.dashboardUrl}/`);
        if (page.status !== 200) return false;
        await stack.call("sync-all");
        return true;
      }, 180_000),
      exited.then((code) => {
        throw new Error(`scripts/start.sh exited (${code}) before the stack was up: see .local/dashboard-test/${name}-stack.log`);
      }),
    ]);
  } catch (err) {
    await stack.stop();
    throw err;
  }
  return stack;
}

/** A user created through Auth's admin API (the trigger makes the profile). */
export async function createUser(stack, { email, password, role, name }) {
  const res = await fetch(`${stack.apiUrl}/auth/v1/admin/users`, {
    method: "POST",
    headers: { apikey: stack.serviceKey, authorization: `Bearer ${stack.serviceKey}`, "content-type": "application/json" },
    body: JSON.stringify({
      email,
      password,
      email_confirm: true,
      user_metadata: name ? { full_name: name } : {},
      app_metadata: role ? { role } : {},
    }),
  });
  const body = await res.json();
  if (!res.ok) throw new Error(`create ${email}: HTTP ${res.status} ${JSON.stringify(body)}`);
  return { id: body.id, email, password };
}

/** A fresh access token for the user (password grant), as their next sign-in gets it. */
export async function signIn(stack, { email, password }) {
  const res = await fetch(`${stack.apiUrl}/auth/v1/token?grant_type=password`, {
    method: "POST",
    headers: { apikey: stack.anonKey, "content-type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  const body = await res.json();
  if (!res.ok) throw new Error(`sign in ${email}: HTTP ${res.status}`);
  return body.access_token;
}

/** Debian's Chromium (apt-get install chromium): nothing here downloads a browser. */
export const CHROMIUM = "/usr/bin/chromium";
export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A browser with a fresh --user-data-dir (`dir`, made by the caller) and its first page. */
export async function launchChromium(dir, viewport = { width: 1280, height: 900 }) {
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  return { context, page };
}
