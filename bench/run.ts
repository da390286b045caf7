// User Sync benchmarks (issue 5). Prepares its own data in the benchmark database
// (provider-shaped auth users generated in SQL), runs every scenario against what it
// is measured against in the same run, checks after each reconcile that
// user_sync.status() shows no missing, orphaned or drifted profile, prints one table
// and writes the figures to bench/results.json and bench/RESULTS.md.
//
// Run through `npm run bench` / `deno task bench` (scripts/bench.sh starts a dedicated
// cluster). Directly: deno run -A bench/run.ts [--sizes 10000,100000,1000000] ...
// (see --help).
import { type FnProc, startFunction as startBenchFunction, stopFunction } from "./lib/functions.ts";
import { parseArgs } from "node:util";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import {
  backendPid,
  connect,
  type DbConfig,
  median,
  procCpuSeconds,
  procRssBytes,
  signUp,
} from "./lib/pg.ts";
import { seedStyleSync } from "./lib/seed_sync.ts";
import { apiKey, LOCAL_HOOK_SECRET, LOCAL_JWT_SECRET } from "../platform/local.ts";
import { signWebhook } from "../supabase/functions/_shared/webhook_signature.ts";

const HELP = `Usage: deno run -A bench/run.ts [options]
  --sizes LIST          auth users for the cold reconcile, ascending (default 10000,100000,1000000);
                        the no-op, drift, sign-up and hook scenarios run at the largest
  --seed-sizes LIST     sizes (among --sizes) for the seed-approach comparison (default 10000,100000)
  --seed-in-sync-max N  also time the seed's sync on an in-sync table up to N users (default 10000;
                        at 100,000 it adds about a minute)
  --reps N              repetitions of each timed pair (default 3; 2 at 500,000 users and more)
  --drift-percent P     drift of the drift scenario, in percent of the users (default 1)
  --signup-rounds N     alternating pairs of sign-up rounds (default 8)
  --signup-batch N      sign-ups per round (default 500)
  --http-connections N  connections of the hook load (default 50)
  --http-duration S     seconds of the hook load (default 10)
  --skip-seed --skip-signup --skip-http --skip-memory   leave a scenario out
  --db-port N           database port (default USER_SYNC_DB_PORT or 54500)
  --api-port N          first port for the functions (default 54510)
  --out FILE            JSON results (default bench/results.json); markdown next to it (RESULTS.md)
  --scenario search     only the admin search scenario (bench/search.ts; --scenario search --help)`;

// Scenarios in files of their own: `npm run bench -- --scenario search [...]` (bench/search.ts).
const SCENARIOS: Record<string, () => Promise<{ main(args: string[]): Promise<void> }>> = {
  search: () => import("./search.ts"),
};
if (Deno.args.includes("--scenario")) {
  const name = Deno.args[Deno.args.indexOf("--scenario") + 1];
  if (!(name in SCENARIOS)) {
    console.error(`unknown scenario ${name}; known: ${Object.keys(SCENARIOS).join(", ")}`);
    Deno.exit(2);
  }
  await (await SCENARIOS[name]()).main(Deno.args);
  Deno.exit(0);
}

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    sizes: { type: "string", default: "10000,100000,1000000" },
    "seed-sizes": { type: "string", default: "10000,100000" },
    "seed-in-sync-max": { type: "string", default: "10000" },
    reps: { type: "string" },
    "drift-percent": { type: "string", default: "1" },
    "signup-rounds": { type: "string", default: "8" },
    "signup-batch": { type: "string", default: "500" },
    "http-connections": { type: "string", default: "50" },
    "http-duration": { type: "string", default: "10" },
    "skip-seed": { type: "boolean", default: false },
    "skip-signup": { type: "boolean", default: false },
    "skip-http": { type: "boolean", default: false },
    "skip-memory": { type: "boolean", default: false },
    "db-port": { type: "string" },
    "api-port": { type: "string", default: "54510" },
    out: { type: "string", default: "bench/results.json" },
    help: { type: "boolean", default: false },
  },
});
if (flags.help) {
  console.log(HELP);
  Deno.exit(0);
}
const list = (s: string) =>
  s.split(",").map((x) => Number(x.trim().replace(/_/g, ""))).filter((x) => x > 0);
const SIZES = list(flags.sizes!).sort((a, b) => a - b);
const SEED_SIZES = new Set(list(flags["seed-sizes"]!));
const SEED_IN_SYNC_MAX = Number(flags["seed-in-sync-max"]);
const MAX = SIZES[SIZES.length - 1];
const repsFor = (n: number) => flags.reps ? Number(flags.reps) : n >= 500_000 ? 2 : 3;
const DRIFT_PCT = Number(flags["drift-percent"]);
const SIGNUP_ROUNDS = Number(flags["signup-rounds"]);
const SIGNUP_BATCH = Number(flags["signup-batch"]);
const HTTP_CONNS = Number(flags["http-connections"]);
const HTTP_SECONDS = Number(flags["http-duration"]);
const DB_PORT = Number(flags["db-port"] ?? Deno.env.get("USER_SYNC_DB_PORT") ?? 54500);
const API_PORT = Number(flags["api-port"]);
const OUT = flags.out!;
const ROOT = new URL("..", import.meta.url).pathname;

const cfg: DbConfig = {
  host: "127.0.0.1",
  port: DB_PORT,
  database: "postgres",
  password: "postgres",
};
const dbUrl = `postgresql://postgres:postgres@127.0.0.1:${DB_PORT}/postgres`;
const admin = connect(cfg, "supabase_admin"); // setup, floors, statistics
const pg = connect(cfg, "postgres"); // what the functions and the cron job run as
const started = Date.now();

// ---------------------------------------------------------------------------
// results
// ---------------------------------------------------------------------------
interface Check {
  scenario: string;
  ok: boolean;
  detail: string;
}
const checks: Check[] = [];
const results: Record<string, unknown> = {};
function check(scenario: string, ok: boolean, detail: string) {
  checks.push({ scenario, ok, detail });
  if (!ok) console.error(`  CHECK FAILED [${scenario}] ${detail}`);
}
const log = (msg: string) =>
  console.error(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${msg}`);
const fmtS = (ms: number) =>
  ms >= 10_000
    ? `${(ms / 1000).toFixed(1)} s`
    : ms >= 1000
    ? `${(ms / 1000).toFixed(2)} s`
    : `${ms.toFixed(0)} ms`;
const fmtN = (n: number) => n.toLocaleString("en-US");
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

async function time<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

interface Status {
  auth_users: number;
  profiles: number;
  missing: number;
  orphaned: number;
  drifted: number;
  open_errors: number;
}
async function status(): Promise<Status> {
  const [{ s }] = await pg`select user_sync.status() as s`;
  return s as Status;
}
/** The correctness check after each reconcile: nothing missing, orphaned or drifted. */
async function checkClean(scenario: string, expectUsers?: number): Promise<Status> {
  const s = await status();
  const ok = s.missing === 0 && s.orphaned === 0 && s.drifted === 0 &&
    (expectUsers === undefined || (s.auth_users === expectUsers && s.profiles === expectUsers));
  check(
    scenario,
    ok,
    `status(): auth_users ${s.auth_users}, profiles ${s.profiles}, missing ${s.missing}, orphaned ${s.orphaned}, drifted ${s.drifted}`,
  );
  return s;
}

interface Report {
  status: string;
  inserted: number;
  updated: number;
  deleted: number;
  auth_users: number;
  profiles: number;
  duration_ms: number;
  skipped?: boolean;
}
async function reconcile(): Promise<{ ms: number; report: Report }> {
  const { ms, value } = await time(() => pg`select user_sync.reconcile(false, 'bench') as r`);
  return { ms, report: value[0].r as Report };
}

// ---------------------------------------------------------------------------
// machine
// ---------------------------------------------------------------------------
const [{ version: pgVersion }] = await admin`select current_setting('server_version') as version`;
const machine = {
  cores: os.cpus().length,
  cpu: os.cpus()[0]?.model ?? "unknown",
  memory_gib: round(os.totalmem() / 2 ** 30, 1),
  postgres: pgVersion as string,
  deno: Deno.version.deno,
  os: `${os.type()} ${os.release()}`,
  load_average_start: os.loadavg().map((x) => round(x)),
};
log(
  `machine: ${machine.cores} cores (${machine.cpu}), ${machine.memory_gib} GiB, PostgreSQL ${machine.postgres}, Deno ${machine.deno}`,
);

// ---------------------------------------------------------------------------
// setup: a clean slate in the benchmark database
// ---------------------------------------------------------------------------
await admin.unsafe(readFileSync(`${ROOT}bench/sql/setup.sql`, "utf8"));
await admin`truncate auth.users cascade`;
await admin`truncate user_sync.errors, user_sync.runs`;
await admin`truncate bench.scratch`;
await admin`alter table auth.users enable trigger user_sync_on_auth_user_insert`;
const pgPid = await backendPid(pg);

// ---------------------------------------------------------------------------
// function processes (HTTP and memory scenarios)
// ---------------------------------------------------------------------------
const serviceKey = await apiKey("service_role", LOCAL_JWT_SECRET);
const anonKey = await apiKey("anon", LOCAL_JWT_SECRET);
// One process per function, as the Edge Runtime serves it (bench/lib/functions.ts).
const functionEnv = {
  SUPABASE_DB_URL: dbUrl,
  SUPABASE_SERVICE_ROLE_KEY: serviceKey,
  SUPABASE_ANON_KEY: anonKey,
  USER_SYNC_JWT_SECRET: LOCAL_JWT_SECRET,
  USER_SYNC_HOOK_SECRET: LOCAL_HOOK_SECRET,
};
const startFunction = (name: string, port: number) => startBenchFunction(ROOT, name, port, functionEnv);

// sync-all memory: RSS after a 10k reconcile and after a 1M reconcile, same process.
let syncAll: FnProc | undefined;
const memory: Record<string, unknown> = {};
async function syncAllReconcile(label: string, users: number) {
  if (!syncAll) return;
  await admin`truncate public.users`;
  await admin`checkpoint`;
  let peak = 0;
  const pid = syncAll.proc.pid;
  const poll = setInterval(() => {
    peak = Math.max(peak, procRssBytes(pid));
  }, 50);
  // sync-all stops at its budget (120 s) with complete: false; the next POST (the cron
  // job's next run) continues the same pass. Summed over the POSTs of one heal.
  let posts = 0;
  let inserted = 0;
  let res: Response;
  let body: { inserted?: number; complete?: boolean; skipped?: boolean; [k: string]: unknown };
  const { ms } = await time(async () => {
    do {
      res = await fetch(syncAll!.url, {
        method: "POST",
        headers: {
          authorization: `Bearer ${serviceKey}`,
          apikey: serviceKey,
          "content-type": "application/json",
        },
        body: "{}",
      });
      body = await res.json();
      posts++;
      inserted += body.inserted ?? 0;
    } while (res.status === 200 && body.complete === false && !body.skipped && posts < 100);
  });
  body = { ...body!, inserted };
  res = res!;
  clearInterval(poll);
  await new Promise((r) => setTimeout(r, 500));
  const rss = procRssBytes(pid);
  check(
    `sync-all reconcile ${label}`,
    res.status === 200 && body.inserted === users && body.status === "ok",
    `HTTP ${res.status}, status ${body.status}, inserted ${body.inserted} of ${users}`,
  );
  await checkClean(`sync-all reconcile ${label}`, users);
  memory[label] = {
    users,
    rss_mb: round(rss / 2 ** 20, 1),
    peak_rss_mb: round(Math.max(peak, rss) / 2 ** 20, 1),
    ms: round(ms, 0),
    posts,
  };
  log(
    `sync-all ${label}: ${fmtS(ms)}, RSS ${(rss / 2 ** 20).toFixed(1)} MB (peak ${
      (Math.max(peak, rss) / 2 ** 20).toFixed(1)
    } MB)`,
  );
}

// ---------------------------------------------------------------------------
// scenarios
// ---------------------------------------------------------------------------
const cold: Record<string, unknown>[] = [];
const seed: Record<string, unknown>[] = [];
let generated = 0;
const GEN_CHUNK = 250_000;

for (const size of SIZES) {
  // 1. data: grow auth.users to `size` (profiles missing: trigger bypassed)
  const g = await time(async () => {
    for (let from = generated + 1; from <= size; from += GEN_CHUNK) {
      await admin`select bench.gen_users(${from}, ${Math.min(size, from + GEN_CHUNK - 1)})`;
    }
    await admin`vacuum analyze auth.users`;
  });
  generated = size;
  log(`generated ${fmtN(size)} auth users in ${fmtS(g.ms)}`);

  // 2. cold reconcile vs the floor (insert id, email into a scratch table with a PK)
  const reps = repsFor(size);
  const floorMs: number[] = [];
  const coldMs: number[] = [];
  for (let rep = 0; rep < reps; rep++) {
    for (const which of rep % 2 === 0 ? ["floor", "ours"] : ["ours", "floor"]) {
      if (which === "floor") {
        await admin`truncate bench.scratch`;
        await admin`checkpoint`;
        const t = await time(() =>
          admin`insert into bench.scratch select id, email from auth.users`
        );
        floorMs.push(t.ms);
      } else {
        await admin`truncate public.users`;
        await admin`checkpoint`;
        const t = await reconcile();
        coldMs.push(t.ms);
        check(
          `cold reconcile ${fmtN(size)}`,
          t.report.status === "ok" && t.report.inserted === size,
          `report: status ${t.report.status}, inserted ${t.report.inserted} of ${size}`,
        );
        await checkClean(`cold reconcile ${fmtN(size)}`, size);
      }
    }
  }
  const c = {
    users: size,
    reconcile_ms: coldMs.map((x) => round(x, 0)),
    floor_ms: floorMs.map((x) => round(x, 0)),
    reconcile_median_ms: round(median(coldMs), 0),
    floor_median_ms: round(median(floorMs), 0),
    ratio: round(median(coldMs) / median(floorMs)),
  };
  cold.push(c);
  log(
    `cold reconcile ${fmtN(size)}: ${fmtS(c.reconcile_median_ms)} vs floor ${
      fmtS(c.floor_median_ms)
    } = ${c.ratio}x`,
  );

  // 3. the seed's approach on the same data, from empty and when in sync
  if (!flags["skip-seed"] && SEED_SIZES.has(size)) {
    const seedSql = connect(cfg, "postgres");
    await admin`truncate public.users`;
    await admin`checkpoint`;
    const s = await time(() => seedStyleSync(seedSql));
    await checkClean(`seed approach ${fmtN(size)} (from empty)`, size);
    check(
      `seed approach ${fmtN(size)} (from empty)`,
      s.value.inserted === size,
      `inserted ${s.value.inserted} of ${size}`,
    );
    // ours when in sync, on the same data: a first run (it derives every profile the
    // seed wrote), then the steady state
    const first = await reconcile();
    check(
      `no-op reconcile ${fmtN(size)}`,
      first.report.inserted + first.report.updated + first.report.deleted === 0,
      `first run after the seed's sync wrote ${JSON.stringify(first.report)}`,
    );
    const noop: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t = await reconcile();
      check(
        `no-op reconcile ${fmtN(size)}`,
        t.report.inserted + t.report.updated + t.report.deleted === 0,
        `wrote ${JSON.stringify(t.report)}`,
      );
      noop.push(t.ms);
    }
    await checkClean(`no-op reconcile ${fmtN(size)}`, size);
    let s2: { ms: number } | undefined;
    if (size <= SEED_IN_SYNC_MAX) {
      const r2 = await time(() => seedStyleSync(seedSql));
      check(
        `seed approach ${fmtN(size)} (in sync)`,
        r2.value.inserted === 0,
        `inserted ${r2.value.inserted}`,
      );
      s2 = r2;
    }
    await seedSql.end();
    const row = {
      users: size,
      seed_from_empty_ms: round(s.ms, 0),
      ours_from_empty_ms: c.reconcile_median_ms,
      speedup_from_empty: round(s.ms / c.reconcile_median_ms, 1),
      seed_in_sync_ms: s2 ? round(s2.ms, 0) : null,
      ours_first_after_seed_ms: round(first.ms, 0),
      ours_in_sync_ms: round(median(noop), 0),
      speedup_in_sync: s2 ? round(s2.ms / median(noop), 1) : null,
      seed_round_trips_from_empty: s.value.roundTrips,
      seed_pages: s.value.pages,
    };
    seed.push(row);
    log(
      `seed approach ${fmtN(size)}: from empty ${fmtS(s.ms)} (ours ${
        fmtS(c.reconcile_median_ms)
      }, ${row.speedup_from_empty}x)` +
        (s2
          ? `, in sync ${fmtS(s2.ms)} (ours ${fmtS(row.ours_in_sync_ms)}, ${row.speedup_in_sync}x)`
          : ""),
    );
  }

  // 4. sync-all memory: a reconcile at the smallest and at the largest size
  if (!flags["skip-memory"] && (size === SIZES[0] || size === MAX)) {
    if (!syncAll) {
      syncAll = await startFunction("sync-all", API_PORT + 1);
      await new Promise((r) => setTimeout(r, 500));
      memory.start_rss_mb = round(procRssBytes(syncAll.proc.pid) / 2 ** 20, 1);
    }
    await syncAllReconcile(size === SIZES[0] ? "first" : "last", size);
  }
}
results.cold = cold;
if (seed.length) results.seed = seed;
if (syncAll) {
  await stopFunction(syncAll);
  const first = memory.first as { rss_mb: number } | undefined;
  const last = memory.last as { rss_mb: number; users: number } | undefined;
  if (first && last && SIZES.length > 1) {
    memory.growth_mb = round(last.rss_mb - first.rss_mb, 1);
  }
  results.sync_all_memory = memory;
}

// 5. no-op reconcile at the largest size vs an anti-join count; zero rows written
{
  await admin`vacuum analyze public.users`;
  // The first run after the cold one: in sync already; it derives every profile again
  // (all rows are newer than any earlier run's horizon). Reported, not in the median.
  const settle = await reconcile();
  check(
    `no-op reconcile ${fmtN(MAX)}`,
    settle.report.inserted + settle.report.updated + settle.report.deleted === 0,
    `first run after the cold one wrote ${JSON.stringify(settle.report)}`,
  );
  const floorMs: number[] = [];
  const noopMs: number[] = [];
  const noopCpu: number[] = [];
  const written: number[] = [];
  const statWrites = async () => {
    await admin`select pg_stat_clear_snapshot()`;
    const [r] =
      await admin`select n_tup_ins + n_tup_upd + n_tup_del as w from pg_stat_all_tables where relid = 'public.users'::regclass`;
    return Number(r.w);
  };
  const flush = async () => {
    for (const c of [pg, admin]) {
      await c`select pg_stat_force_next_flush()`;
      await c`select 1`;
    }
    await new Promise((r) => setTimeout(r, 1200));
  };
  await flush();
  const before = await statWrites();
  const reps = Math.max(3, repsFor(MAX) + 1);
  for (let rep = 0; rep < reps; rep++) {
    for (const which of rep % 2 === 0 ? ["floor", "ours"] : ["ours", "floor"]) {
      if (which === "floor") {
        const t = await time(() =>
          admin`select count(*) from auth.users au where not exists (select 1 from public.users u where u.id = au.id)`
        );
        floorMs.push(t.ms);
      } else {
        const cpu0 = procCpuSeconds(pgPid);
        const t = await time(() =>
          pg.begin(async (tx) => {
            // This backend's counters of public.users, before and after, in one
            // transaction (they may also hold earlier transactions' unflushed counts).
            const counters = tx`select pg_stat_get_xact_tuples_inserted('public.users'::regclass)
              + pg_stat_get_xact_tuples_updated('public.users'::regclass)
              + pg_stat_get_xact_tuples_deleted('public.users'::regclass) as n`;
            const [w0] = await counters;
            const [{ r }] = await tx`select user_sync.reconcile(false, 'bench') as r`;
            const [w1] = await tx`select pg_stat_get_xact_tuples_inserted('public.users'::regclass)
              + pg_stat_get_xact_tuples_updated('public.users'::regclass)
              + pg_stat_get_xact_tuples_deleted('public.users'::regclass) as n`;
            return { r: r as Report, n: Number(w1.n) - Number(w0.n) };
          })
        );
        noopCpu.push((procCpuSeconds(pgPid) - cpu0) * 1000);
        noopMs.push(t.ms);
        written.push(t.value.n);
        check(
          `no-op reconcile ${fmtN(MAX)}`,
          t.value.n === 0 && t.value.r.inserted + t.value.r.updated + t.value.r.deleted === 0,
          `rows written (transaction statistics) ${t.value.n}; report inserted ${t.value.r.inserted}, updated ${t.value.r.updated}, deleted ${t.value.r.deleted}`,
        );
      }
    }
  }
  await flush();
  const after = await statWrites();
  check(
    `no-op reconcile ${fmtN(MAX)}`,
    after === before,
    `public.users rows written per pg_stat_all_tables: ${after - before}`,
  );
  await checkClean(`no-op reconcile ${fmtN(MAX)}`, MAX);
  results.noop = {
    users: MAX,
    reconcile_ms: noopMs.map((x) => round(x, 0)),
    reconcile_cpu_ms: noopCpu.map((x) => round(x, 0)),
    floor_ms: floorMs.map((x) => round(x, 0)),
    reconcile_median_ms: round(median(noopMs), 0),
    floor_median_ms: round(median(floorMs), 0),
    ratio: round(median(noopMs) / median(floorMs)),
    first_after_cold_ms: round(settle.ms, 0),
    rows_written: written.reduce((a, b) => a + b, 0),
    rows_written_table_statistics: after - before,
  };
  log(
    `no-op reconcile ${fmtN(MAX)}: ${fmtS(median(noopMs))} vs anti-join ${
      fmtS(median(floorMs))
    } = ${(results.noop as { ratio: number }).ratio}x, rows written ${after - before}`,
  );
}

// 6. drift of DRIFT_PCT % (missing, changed, orphaned mixed) vs the no-op reconcile
{
  const driftMs: number[] = [];
  const noopMs: number[] = [];
  const made: unknown[] = [];
  const reps = repsFor(MAX) + 1;
  for (let rep = 0; rep < reps; rep++) {
    const [{ d }] = await admin`select bench.make_drift(${DRIFT_PCT}, ${rep + 1}) as d`;
    made.push(d);
    const before = await status();
    const t = await reconcile();
    driftMs.push(t.ms);
    const r = t.report;
    check(
      `drift ${DRIFT_PCT}% ${fmtN(MAX)}`,
      r.status === "ok" && r.inserted === before.missing && r.updated === before.drifted &&
        r.deleted === before.orphaned &&
        before.missing === d.missing && before.orphaned === d.orphaned &&
        before.drifted === d.changed,
      `made ${
        JSON.stringify(d)
      }; status before: missing ${before.missing}, drifted ${before.drifted}, orphaned ${before.orphaned}; reconcile: inserted ${r.inserted}, updated ${r.updated}, deleted ${r.deleted}`,
    );
    await checkClean(`drift ${DRIFT_PCT}% ${fmtN(MAX)}`, MAX);
    const n = await reconcile();
    check(
      `no-op reconcile ${fmtN(MAX)}`,
      n.report.inserted + n.report.updated + n.report.deleted === 0,
      `report ${JSON.stringify(n.report)}`,
    );
    noopMs.push(n.ms);
  }
  const ratios = driftMs.map((x, i) => x / noopMs[i]);
  results.drift = {
    users: MAX,
    percent: DRIFT_PCT,
    made,
    reconcile_ms: driftMs.map((x) => round(x, 0)),
    noop_ms: noopMs.map((x) => round(x, 0)),
    reconcile_median_ms: round(median(driftMs), 0),
    noop_median_ms: round(median(noopMs), 0),
    ratio: round(median(ratios)),
  };
  log(
    `drift ${DRIFT_PCT}% ${fmtN(MAX)}: ${fmtS(median(driftMs))} vs no-op ${
      fmtS(median(noopMs))
    } = ${(results.drift as { ratio: number }).ratio}x`,
  );
}

// 7. sign-up cost: single-row inserts into auth.users as supabase_auth_admin,
//    with the trigger vs without, alternating rounds
if (!flags["skip-signup"]) {
  const auth = connect(cfg, "supabase_auth_admin"); // search_path = auth, as GoTrue
  const withRate: number[] = [];
  const withoutRate: number[] = [];
  let n = 0;
  const withEmails: string[] = [];
  const round1 = async (trigger: boolean) => {
    await admin.unsafe(
      `alter table auth.users ${
        trigger ? "enable" : "disable"
      } trigger user_sync_on_auth_user_insert`,
    );
    const t0 = performance.now();
    for (let i = 0; i < SIGNUP_BATCH; i++) {
      n++;
      const id = crypto.randomUUID();
      const email = `signup-${n}@bench.example`;
      if (trigger) withEmails.push(email);
      await signUp(auth, id, email, `Sign Up ${n}`);
    }
    return SIGNUP_BATCH / ((performance.now() - t0) / 1000);
  };
  try {
    await round1(true); // warm-up, not counted
    await round1(false);
    for (let r = 0; r < SIGNUP_ROUNDS; r++) {
      for (const trig of r % 2 === 0 ? [true, false] : [false, true]) {
        (trig ? withRate : withoutRate).push(await round1(trig));
      }
    }
  } finally {
    await admin`alter table auth.users enable trigger user_sync_on_auth_user_insert`;
  }
  const [{ c }] =
    await admin`select count(*)::int as c from public.users where email = any(${withEmails})`;
  check(
    "sign-up with the trigger",
    c === withEmails.length,
    `${c} of ${withEmails.length} sign-ups had their profile at once`,
  );
  const heal = await reconcile();
  check(
    "sign-up without the trigger, then reconcile",
    heal.report.status === "ok" && heal.report.inserted === n - withEmails.length,
    `reconcile inserted ${heal.report.inserted} of ${n - withEmails.length} trigger-less sign-ups`,
  );
  await checkClean("sign-up", MAX + n);
  await admin`delete from auth.users where email like 'signup-%@bench.example'`;
  await checkClean("sign-up cleanup", MAX);
  await auth.end();
  const ratios = withRate.map((x, i) => x / withoutRate[i]);
  results.signup = {
    rounds: SIGNUP_ROUNDS,
    per_round: SIGNUP_BATCH,
    with_trigger_per_s: withRate.map((x) => round(x, 0)),
    without_trigger_per_s: withoutRate.map((x) => round(x, 0)),
    with_median_per_s: round(median(withRate), 0),
    without_median_per_s: round(median(withoutRate), 0),
    ratio: round(median(ratios)),
  };
  log(
    `sign-up: ${median(withRate).toFixed(0)}/s with the trigger vs ${
      median(withoutRate).toFixed(0)
    }/s without = ${(results.signup as { ratio: number }).ratio}`,
  );
}

// 8. custom_access_token hook over HTTP with wrk
if (!flags["skip-http"]) {
  const wrk = new Deno.Command("sh", { args: ["-c", "command -v wrk"], stdout: "piped" })
    .outputSync();
  if (!wrk.success) {
    check(
      "custom_access_token hook",
      false,
      "wrk is not installed (scripts/bench.sh installs it: apt-get install wrk)",
    );
  } else {
    const hook = await startFunction("auth-webhook", API_PORT);
    const ids =
      (await admin`select id from public.users where deleted_at is null order by hashtext(id::text) limit 2000`)
        .map((r) => r.id as string);
    const ts = Math.floor(Date.now() / 1000);
    const reqs = ids.map((id, i) => {
      const body = JSON.stringify({
        user_id: id,
        claims: {
          aud: "authenticated",
          exp: ts + 3600,
          iat: ts,
          iss: "http://127.0.0.1:54321/auth/v1",
          sub: id,
          email: `user${i}@example.com`,
          phone: "",
          app_metadata: { provider: "email", providers: ["email"] },
          user_metadata: { email_verified: true },
          role: "authenticated",
          aal: "aal1",
          amr: [{ method: "password", timestamp: ts }],
          session_id: crypto.randomUUID(),
          is_anonymous: false,
        },
        authentication_method: "password",
      });
      const msgId = `msg_bench_${i}`;
      return {
        body,
        headers: {
          "content-type": "application/json",
          "webhook-id": msgId,
          "webhook-timestamp": String(ts),
          "webhook-signature": signWebhook(LOCAL_HOOK_SECRET, msgId, ts, body),
        },
      };
    });
    // one request by hand: the claims come back with user_role
    const probe = await fetch(hook.url, {
      method: "POST",
      headers: reqs[0].headers,
      body: reqs[0].body,
    });
    const probeBody = await probe.json();
    check(
      "custom_access_token hook",
      probe.status === 200 && typeof probeBody?.claims?.user_role === "string",
      `probe: HTTP ${probe.status}, user_role ${probeBody?.claims?.user_role}`,
    );
    const lua = `${ROOT}.local/bench-hook.lua`;
    const luaStr = (s: string) => JSON.stringify(s); // JSON strings are valid Lua strings here (ASCII only)
    writeFileSync(
      lua,
      `
local reqs = {}
local bodies = {
${
        reqs.map((r) =>
          `  {${luaStr(r.body)}, ${luaStr(r.headers["webhook-id"])}, ${
            luaStr(r.headers["webhook-signature"])
          }}`
        ).join(",\n")
      }
}
local counter = 0
init = function(args)
  for i, b in ipairs(bodies) do
    reqs[i] = wrk.format("POST", "/functions/v1/auth-webhook", {
      ["content-type"] = "application/json", ["webhook-id"] = b[2],
      ["webhook-timestamp"] = "${ts}", ["webhook-signature"] = b[3] }, b[1])
  end
end
request = function()
  counter = counter + 1
  return reqs[(counter % #reqs) + 1]
end
${
        Deno.env.get("BENCH_DEBUG_WRK")
          ? `local shown = 0
response = function(status, headers, body)
  if status ~= 200 and shown < 3 then shown = shown + 1; io.write("DEBUG " .. status .. " " .. body .. "\\n") end
end`
          : ""
      }
done = function(summary, latency, requests)
  io.write(string.format('WRKJSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
`,
    );
    const before = readFileSync(hook.logFile, "utf8").split("\n").length;
    const out = await new Deno.Command("wrk", {
      args: [
        "-t2",
        `-c${HTTP_CONNS}`,
        `-d${HTTP_SECONDS}s`,
        "--timeout",
        "5s",
        "-s",
        lua,
        `http://127.0.0.1:${hook.port}/functions/v1/auth-webhook`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    await new Promise((r) => setTimeout(r, 300));
    const lines = readFileSync(hook.logFile, "utf8").split("\n").slice(before - 1);
    const extended = lines.filter((l) => l.includes('"claims extended"')).length;
    const unchanged = lines.filter((l) => l.includes('"claims unchanged"')).length;
    const rejected = lines.filter((l) => l.includes("signature rejected")).length;
    await stopFunction(hook);
    if (Deno.env.get("BENCH_DEBUG_WRK")) console.error(text);
    const m = /WRKJSON (\{.*\})/.exec(text);
    if (!m) {
      check(
        "custom_access_token hook",
        false,
        `wrk gave no summary: ${text.slice(0, 300)} ${
          new TextDecoder().decode(out.stderr).slice(0, 300)
        }`,
      );
    } else {
      const w = JSON.parse(m[1]);
      const errors = w.connect + w.read + w.write + w.status + w.timeout;
      const rps = w.requests / (w.duration_us / 1e6);
      check(
        "custom_access_token hook",
        errors === 0 && unchanged === 0 && rejected === 0 && extended >= w.requests,
        `${w.requests} requests, socket/HTTP errors ${errors}, claims extended ${extended}, unchanged (masked failures) ${unchanged}, bad signature ${rejected}`,
      );
      results.hook = {
        connections: HTTP_CONNS,
        seconds: HTTP_SECONDS,
        requests: w.requests,
        requests_per_s: round(rps, 0),
        p50_ms: round(w.p50_us / 1000),
        p90_ms: round(w.p90_us / 1000),
        p99_ms: round(w.p99_us / 1000),
        max_ms: round(w.max_us / 1000),
        errors,
        claims_unchanged: unchanged,
        tool: "wrk 4.1.0 (-t2)",
      };
      log(
        `hook: ${rps.toFixed(0)} req/s, p50 ${(w.p50_us / 1000).toFixed(1)} ms, p99 ${
          (w.p99_us / 1000).toFixed(1)
        } ms, errors ${errors}`,
      );
    }
  }
}

// ---------------------------------------------------------------------------
// report
// ---------------------------------------------------------------------------
const finished = {
  total_s: round((Date.now() - started) / 1000, 0),
  load_average_end: os.loadavg().map((x) => round(x)),
};
const ok = checks.every((c) => c.ok);
const shownArgs = Deno.args.filter((a, i, all) => a !== "--db-port" && all[i - 1] !== "--db-port"); // --db-port comes from scripts/bench.sh
const command = `npm run bench${shownArgs.length ? ` -- ${shownArgs.join(" ")}` : ""}`;

type Row = [string, string, string, string, string, string, string];
const rows: Row[] = [];
const yes = (b: boolean) => (b ? "yes" : "**no**");
for (
  const c of cold as {
    users: number;
    reconcile_median_ms: number;
    floor_median_ms: number;
    ratio: number;
  }[]
) {
  const goal = c.users === MAX && MAX >= 1_000_000;
  rows.push([
    `cold reconcile (empty public.users)`,
    fmtN(c.users),
    fmtS(c.reconcile_median_ms),
    `floor: insert id, email into a PK table ${fmtS(c.floor_median_ms)}`,
    `${c.ratio}×`,
    goal ? "≤ 2.0× at 1M" : "",
    goal ? yes(c.ratio <= 2) : "",
  ]);
}
const noop = results.noop as {
  reconcile_median_ms: number;
  floor_median_ms: number;
  ratio: number;
  rows_written: number;
  rows_written_table_statistics: number;
};
rows.push([
  `no-op reconcile (in sync)`,
  fmtN(MAX),
  fmtS(noop.reconcile_median_ms),
  `floor: anti-join count ${fmtS(noop.floor_median_ms)}`,
  `${noop.ratio}×; rows written ${noop.rows_written_table_statistics}`,
  "≤ 3×, 0 rows written",
  yes(noop.ratio <= 3 && noop.rows_written === 0 && noop.rows_written_table_statistics === 0),
]);
const drift = results.drift as {
  reconcile_median_ms: number;
  noop_median_ms: number;
  ratio: number;
};
rows.push([
  `${DRIFT_PCT}% drift (missing, changed, orphaned)`,
  fmtN(MAX),
  fmtS(drift.reconcile_median_ms),
  `the no-op reconcile ${fmtS(drift.noop_median_ms)}`,
  `${drift.ratio}×`,
  "≤ 1.5×",
  yes(drift.ratio <= 1.5),
]);
for (
  const s of seed as {
    users: number;
    seed_from_empty_ms: number;
    ours_from_empty_ms: number;
    speedup_from_empty: number;
    seed_in_sync_ms: number | null;
    ours_in_sync_ms: number;
    speedup_in_sync: number | null;
  }[]
) {
  const goal = s.users === 100_000;
  rows.push([
    `seed's app-side sync, from empty`,
    fmtN(s.users),
    fmtS(s.seed_from_empty_ms),
    `our cold reconcile ${fmtS(s.ours_from_empty_ms)}`,
    `ours ${s.speedup_from_empty}× faster`,
    goal ? "ours ≥ 50× faster at 100k" : "",
    goal ? yes(s.speedup_from_empty >= 50) : "",
  ]);
  if (s.seed_in_sync_ms !== null) {
    rows.push([
      `seed's app-side sync, in sync`,
      fmtN(s.users),
      fmtS(s.seed_in_sync_ms),
      `our no-op reconcile ${fmtS(s.ours_in_sync_ms)}`,
      `ours ${s.speedup_in_sync}× faster`,
      "",
      "",
    ]);
  }
}
if (results.signup) {
  const s = results.signup as {
    with_median_per_s: number;
    without_median_per_s: number;
    ratio: number;
  };
  rows.push([
    `sign-up: single-row inserts as supabase_auth_admin`,
    `+${fmtN(SIGNUP_ROUNDS * SIGNUP_BATCH * 2)} on ${fmtN(MAX)}`,
    `${fmtN(s.with_median_per_s)}/s with the trigger`,
    `${fmtN(s.without_median_per_s)}/s without`,
    `${s.ratio}`,
    "≥ 0.75",
    yes(s.ratio >= 0.75),
  ]);
}
if (results.hook) {
  const h = results.hook as {
    requests_per_s: number;
    p99_ms: number;
    p50_ms: number;
    errors: number;
    claims_unchanged: number;
  };
  rows.push([
    `custom_access_token hook over HTTP (${HTTP_CONNS} connections, ${HTTP_SECONDS} s, wrk)`,
    fmtN(MAX),
    `${fmtN(h.requests_per_s)} req/s, p50 ${h.p50_ms} ms, p99 ${h.p99_ms} ms`,
    "—",
    `${h.errors} errors`,
    "≥ 1,000 req/s, p99 ≤ 50 ms, 0 errors",
    yes(h.requests_per_s >= 1000 && h.p99_ms <= 50 && h.errors === 0 && h.claims_unchanged === 0),
  ]);
}
if (
  results.sync_all_memory &&
  (results.sync_all_memory as { growth_mb?: number }).growth_mb !== undefined
) {
  const m = results.sync_all_memory as {
    growth_mb: number;
    first: { rss_mb: number; users: number };
    last: { rss_mb: number; peak_rss_mb: number; users: number };
  };
  rows.push([
    `sync-all process RSS`,
    `${fmtN(m.first.users)} → ${fmtN(m.last.users)}`,
    `${m.last.rss_mb} MB after ${fmtN(m.last.users)} (peak ${m.last.peak_rss_mb} MB)`,
    `${m.first.rss_mb} MB after ${fmtN(m.first.users)}`,
    `${m.growth_mb >= 0 ? "+" : ""}${m.growth_mb} MB`,
    "< 25 MB",
    yes(m.growth_mb < 25),
  ]);
}

const header: Row = [
  "scenario",
  "users",
  "ours",
  "measured against (same run)",
  "result",
  "goal",
  "met",
];
const md = [
  `| ${header.join(" | ")} |`,
  `|${header.map(() => "---").join("|")}|`,
  ...rows.map((r) => `| ${r.join(" | ")} |`),
].join("\n");
const machineLine =
  `${machine.cores} cores (${machine.cpu}), ${machine.memory_gib} GiB RAM, PostgreSQL ${machine.postgres}, Deno ${machine.deno}, ${machine.os}; load average ${
    machine.load_average_start.join(" / ")
  } at start, ${finished.load_average_end.join(" / ")} at end`;
const failed = checks.filter((c) => !c.ok);
const doc = `# Benchmark results

Command: \`${command}\` (${
  new Date().toISOString().slice(0, 16).replace("T", " ")
} UTC, ${finished.total_s} s in all)

Machine: ${machineLine}

${md}

Medians of alternating repetitions; every ratio is taken between figures measured side by side in the same run.
Correctness checks: ${checks.length - failed.length} of ${checks.length} passed${
  failed.length ? ` — FAILED: ${failed.map((c) => `${c.scenario}: ${c.detail}`).join("; ")}` : ""
} (after every reconcile \`user_sync.status()\` shows no missing, orphaned or drifted profile).
Raw figures: [results.json](results.json).

How each figure is taken (\`bench/run.ts\`):
- Data: provider-shaped auth users generated in SQL (\`bench/sql/setup.sql\`: email, Google, GitHub,
  Azure, Apple without a name, phone-only, anonymous, linked, Discord; 0.1% admins), inserted
  with the trigger bypassed so that every profile starts missing; \`vacuum analyze\` after.
- Cold: \`truncate public.users; checkpoint\`, then \`select user_sync.reconcile()\` as postgres, alternating
  with the floor \`insert into bench.scratch (id uuid primary key, email text) select id, email from auth.users\`.
- No-op: after the first run that follows the cold one (it derives every profile again:
  all rows are newer than the previous horizon; shown in results.json as first_after_cold_ms),
  reconcile alternates with \`select count(*) from auth.users au where not exists (select 1 from
  public.users u where u.id = au.id)\`. Rows written: the session's table counters around each run,
  in the same transaction, and \`pg_stat_all_tables\` before and after the whole series.
- Drift: \`bench.make_drift()\` removes profiles, changes auth metadata and e-mails, tampers with
  auth-owned profile columns and adds orphaned profiles behind the system's back (replica
  mode), a third each; then reconcile, paired with a no-op reconcile right after.
- Seed's approach (\`bench/lib/seed_sync.ts\`): pages of 1,000 auth users ordered by created_at with
  OFFSET, one query per user to check its profile, one autocommitted insert per missing user,
  profile fields computed in the app; over a direct SQL connection (kinder than HTTP).
- Sign-up: single-row autocommitted inserts into auth.users as supabase_auth_admin (one
  connection, GoTrue's columns), rounds with the insert trigger enabled and disabled, alternating.
- Hook: \`wrk -t2\` against the auth-webhook function served from its exported handler in its own
  Deno process, 2,000 distinct signed custom_access_token requests; every answer is checked
  in the function's log (claims extended, none returned unchanged).
- sync-all memory: RSS (VmRSS) of the sync-all process after a reconcile of the smallest and
  of the largest size, same process.
`;

const out = {
  command,
  date: new Date().toISOString(),
  machine: { ...machine, ...finished },
  flags,
  results,
  checks,
  ok,
};
writeFileSync(OUT, JSON.stringify(out, null, 2) + "\n");
// The sections other benchmarks own (auth_latency.ts, heal.ts: from the first of their
// markers on) are kept: this run replaces only what comes before them.
const mdPath = OUT.replace(/results\.json$/, "RESULTS.md").replace(/\.json$/, ".md");
const previous = existsSync(mdPath) ? readFileSync(mdPath, "utf8") : "";
const others = previous.search(/<!-- auth-latency:start -->|## Reconcile at scale/);
writeFileSync(mdPath, others >= 0 ? doc.trimEnd() + "\n\n" + previous.slice(others) : doc);
console.log("\n" + md + "\n");
console.log(`Machine: ${machineLine}`);
console.log(
  `Correctness checks: ${checks.length - failed.length}/${checks.length} passed. Figures: ${OUT}`,
);
await admin.end();
await pg.end();
Deno.exit(ok ? 0 : 1);
