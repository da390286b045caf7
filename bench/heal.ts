// Reconcile at scale (issue 12): bounded, resumable calls against their floors,
// measured side by side in one run at the largest size.
//   cold heal (bounded calls of 1 s)      vs INSERT id, email into a table with the same FK
//   first pass after the heal, no-op, 1% drift   vs a heap scan of both tables
//   longest call; rows written by a no-op; Auth's hard delete / phone change waiting
//   on a call; a bulk change (10% of users in one statement) healed in bounded calls;
//   sync-all POSTs of 120 s (RSS of the function process) against a cold table
// Run: npm run bench -- heal [--sizes 1000000,10000000] (scripts/bench.sh starts a
// dedicated cluster). Results: bench/heal-results.json and the "Reconcile at scale"
// section of bench/RESULTS.md.
import { parseArgs } from "node:util";
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { connect, type DbConfig, median, procRssBytes } from "./lib/pg.ts";
import { startFunction, stopFunction } from "./lib/functions.ts";
import { driveHeal, type ReconcileReport } from "../supabase/functions/_shared/heal.ts";
import { apiKey, LOCAL_JWT_SECRET } from "../platform/local.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    sizes: { type: "string", default: "1000000" },
    "call-ms": { type: "string", default: "1000" },
    "sync-all-budget-s": { type: "string", default: "120" },
    "sync-all-runs": { type: "string", default: "2" },
    "noop-reps": { type: "string", default: "3" },
    "skip-sync-all": { type: "boolean", default: false },
    "db-port": { type: "string" },
    "api-port": { type: "string", default: "54510" },
    out: { type: "string", default: "bench/heal-results.json" },
  },
});
const SIZES = flags.sizes!.split(",").map((x) => Number(x.replace(/_/g, ""))).filter((x) => x > 0)
  .sort((a, b) => a - b);
const MAX = SIZES[SIZES.length - 1];
const CALL_MS = Number(flags["call-ms"]);
const DB_PORT = Number(flags["db-port"] ?? Deno.env.get("USER_SYNC_DB_PORT") ?? 54500);
const cfg: DbConfig = {
  host: "127.0.0.1",
  port: DB_PORT,
  database: "postgres",
  password: "postgres",
};
const dbUrl = `postgresql://postgres:postgres@127.0.0.1:${DB_PORT}/postgres`;
const ROOT = new URL("..", import.meta.url).pathname;
const admin = connect(cfg, "supabase_admin");
const pg = connect(cfg, "postgres");
const side = connect(cfg, "supabase_admin"); // Auth's writes racing a call
const started = Date.now();
const log = (m: string) =>
  console.error(`[heal-bench ${((Date.now() - started) / 1000).toFixed(0).padStart(5)}s] ${m}`);
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const fmtN = (n: number) => n.toLocaleString("en-US");
const fmtS = (
  ms: number,
) => (ms >= 10_000
  ? `${(ms / 1000).toFixed(1)} s`
  : ms >= 1000
  ? `${(ms / 1000).toFixed(2)} s`
  : `${ms.toFixed(0)} ms`);
async function time<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}
const checks: { scenario: string; ok: boolean; detail: string }[] = [];
function check(scenario: string, ok: boolean, detail: string) {
  checks.push({ scenario, ok, detail });
  if (!ok) log(`CHECK FAILED [${scenario}] ${detail}`);
}
async function checkClean(scenario: string, users: number) {
  const [{ s }] = await admin`select user_sync.status() as s`;
  const ok = s.missing === 0 && s.orphaned === 0 && s.drifted === 0 && s.auth_users === users &&
    s.profiles === users;
  check(
    scenario,
    ok,
    `status(): auth ${s.auth_users}, profiles ${s.profiles}, missing ${s.missing}, orphaned ${s.orphaned}, drifted ${s.drifted}`,
  );
}

/**
 * Drives bounded calls (as sync-all and the heal command do) until complete, without an
 * error: a user Auth deletes during the heal is skipped by the batch that meets it (0.5.0;
 * before, a 23503 isolated and recorded).
 */
async function heal(label: string) {
  const callMs: number[] = [];
  const t = await time(() =>
    driveHeal({
      budgetMs: Infinity,
      callMs: CALL_MS,
      call: async (maxMs) => {
        const c = await time(() =>
          pg`select user_sync.reconcile(false, 'bench', ${maxMs}::integer) as r`
        );
        callMs.push(c.ms);
        return c.value[0].r as ReconcileReport;
      },
    })
  );
  const r = t.value;
  check(label, r.complete && r.status === "ok", `complete ${r.complete}, status ${r.status}, errors ${r.errors}`);
  log(
    `${label}: ${fmtS(t.ms)} in ${r.calls} calls (longest ${
      fmtS(Math.max(...callMs))
    }); inserted ${r.inserted}, updated ${r.updated}, deleted ${r.deleted}`,
  );
  return { ms: t.ms, calls: r.calls, longest_call_ms: Math.max(...callMs), report: r };
}

const heapScan = async () =>
  (await time(async () => {
    await admin`select sum(length(xmin::text)) from auth.users`;
    await admin`select sum(length(xmin::text)) from public.users`;
  })).ms;
/** The same scan in one process (no parallel workers), as a bounded call runs: for reference. */
const heapScanOneProcess = async () =>
  (await time(() =>
    admin.begin(async (tx) => {
      await tx`set local max_parallel_workers_per_gather = 0`;
      await tx`select sum(length(xmin::text)) from auth.users`;
      await tx`select sum(length(xmin::text)) from public.users`;
    })
  )).ms;
/** Row versions of public.users: unchanged fingerprint = no row written. */
const versions = async () =>
  String(
    (await admin`select count(*) || ':' || sum(hashtext(xmin::text || ctid::text)) as v from public.users`)[
      0
    ].v,
  );

// setup -------------------------------------------------------------------------------
const machine = {
  cores: os.cpus().length,
  cpu: os.cpus()[0]?.model ?? "unknown",
  memory_gib: round(os.totalmem() / 2 ** 30, 1),
  postgres: String((await admin`select current_setting('server_version') as v`)[0].v),
  load_average_start: os.loadavg().map((x) => round(x)),
};
log(
  `machine: ${machine.cores} cores, ${machine.memory_gib} GiB, PostgreSQL ${machine.postgres}; sizes ${
    SIZES.map(fmtN).join(", ")
  }`,
);
await admin.unsafe(readFileSync(`${ROOT}bench/sql/setup.sql`, "utf8"));
await admin`create table if not exists bench.scratch_fk (id uuid primary key references auth.users (id), email text)`;
await admin`truncate auth.users cascade`;
await admin`truncate user_sync.errors, user_sync.runs, user_sync.reconcile_progress`;

const results: Record<string, unknown> = { machine, call_ms: CALL_MS, sizes: {} };
let generated = 0;
for (const size of SIZES) {
  const g = await time(async () => {
    for (let from = generated + 1; from <= size; from += 250_000) {
      await admin`select bench.gen_users(${from}, ${Math.min(size, from + 249_999)})`;
    }
    await admin`vacuum analyze auth.users`;
  });
  generated = size;
  log(`generated ${fmtN(size)} auth users in ${fmtS(g.ms)}`);
  const row: Record<string, unknown> = { users: size };
  (results.sizes as Record<string, unknown>)[size] = row;

  // cold heal vs the FK-insert floor, side by side
  await admin`truncate bench.scratch_fk`;
  await admin`checkpoint`;
  const floor = await time(() =>
    admin`insert into bench.scratch_fk select id, email from auth.users`
  );
  await admin`truncate bench.scratch_fk`;
  await admin`truncate public.users`;
  await admin`delete from user_sync.reconcile_progress`;
  await admin`checkpoint`;
  const cold = await heal(`cold heal ${fmtN(size)}`);
  await checkClean(`cold heal ${fmtN(size)}`, size);
  Object.assign(row, {
    fk_insert_floor_ms: round(floor.ms, 0),
    cold_heal_ms: round(cold.ms, 0),
    cold_ratio: round(cold.ms / floor.ms),
    cold_calls: cold.calls,
    cold_longest_call_ms: round(cold.longest_call_ms, 0),
  });
  log(
    `cold heal ${fmtN(size)}: ${fmtS(cold.ms)} vs FK insert ${fmtS(floor.ms)} = ${
      round(cold.ms / floor.ms)
    }x`,
  );
  if (size !== MAX) continue;

  // first pass after the heal, steady no-ops, 1% drift vs the heap scan
  await admin`vacuum analyze public.users`;
  const scans: number[] = [await heapScan()];
  const first = await heal(`first pass after the heal ${fmtN(size)}`);
  check(
    "first pass after the heal",
    first.report.inserted! + first.report.updated! + first.report.deleted! === 0,
    JSON.stringify(first.report),
  );
  scans.push(await heapScan());
  const noop: number[] = [];
  let longest = Math.max(cold.longest_call_ms, first.longest_call_ms);
  let wrote = false;
  for (let i = 0; i < Number(flags["noop-reps"]); i++) {
    const before = await versions();
    const n = await heal(`no-op ${fmtN(size)}`);
    wrote ||= (await versions()) !== before;
    noop.push(n.ms);
    longest = Math.max(longest, n.longest_call_ms);
    scans.push(await heapScan());
  }
  check(
    "no-op writes nothing",
    !wrote,
    wrote ? "a no-op pass changed row versions of public.users" : "no row version changed",
  );
  // 1%: a third missing (profile deleted), a third drifted (email), a third orphaned... of
  // auth-owned data: name change in metadata (auth side)
  const pct = Math.round(size / 100);
  await admin.begin(async (tx) => {
    await tx`set local session_replication_role = replica`;
    await tx`delete from public.users where id in (select id from public.users order by hashtext(id::text) limit ${
      Math.floor(pct / 3)
    })`;
    await tx`update public.users set email = 'drift.' || email where id in (select id from public.users order by hashtext(id::text || 'e') limit ${
      Math.floor(pct / 3)
    })`;
    await tx`update auth.users set raw_user_meta_data = raw_user_meta_data || '{"full_name": "Renamed"}' where id in (select id from auth.users order by hashtext(id::text || 'n') limit ${
      pct - 2 * Math.floor(pct / 3)
    })`;
  });
  scans.push(await heapScan());
  const drift = await heal(`1% drift ${fmtN(size)}`);
  longest = Math.max(longest, drift.longest_call_ms);
  await checkClean(`1% drift ${fmtN(size)}`, size);
  scans.push(await heapScan());
  const scan = median(scans);
  const scanOne = median([await heapScanOneProcess(), await heapScanOneProcess(), await heapScanOneProcess()]);
  Object.assign(row, {
    heap_scan_floor_ms: round(scan, 0),
    // The floor's scans use parallel workers; a bounded call is one process.
    heap_scan_one_process_ms: round(scanOne, 0),
    noop_ratio_one_process: round(median(noop) / scanOne),
    drift_ratio_one_process: round(drift.ms / scanOne),
    first_pass_ms: round(first.ms, 0),
    first_pass_ratio: round(first.ms / scan),
    noop_ms: noop.map((x) => round(x, 0)),
    noop_median_ms: round(median(noop), 0),
    noop_ratio: round(median(noop) / scan),
    noop_rows_written: wrote ? "some" : 0,
    drift_ms: round(drift.ms, 0),
    drift_ratio: round(drift.ms / scan),
    drift_report: {
      inserted: drift.report.inserted,
      updated: drift.report.updated,
      deleted: drift.report.deleted,
    },
    longest_call_ms: round(longest, 0),
  });
  log(
    `heap scan ${fmtS(scan)}: first pass ${round(first.ms / scan)}x, no-op ${
      round(median(noop) / scan)
    }x, 1% drift ${round(drift.ms / scan)}x; in one process ${fmtS(scanOne)}: no-op ${
      round(median(noop) / scanOne)
    }x, 1% drift ${round(drift.ms / scanOne)}x`,
  );

  // Auth's hard delete and phone change of a user a running call touches: delete 5%
  // of profiles so calls write, and hit users just past the committed cursor.
  await admin`set session_replication_role = replica`;
  await admin`delete from public.users where id in (select id from public.users order by hashtext(id::text || 'w') limit ${
    Math.round(size / 20)
  })`;
  await admin`set session_replication_role = origin`;
  const waits: { op: string; ms: number }[] = [];
  let racing = true;
  const race = (async () => {
    let k = 0;
    while (racing) {
      await new Promise((r) => setTimeout(r, 150));
      // Users just past where the pass stands: the next pages of its walk of auth.users,
      // or the next ids of its id merge.
      const [p] =
        await side`select phase, coalesce(walk_after, '(0,0)')::text as after, (coalesce(walk_after, '(0,0)')::text::point)[0]::bigint + 64 as until, coalesce(last_id, '00000000-0000-0000-0000-000000000000'::uuid) as last_id from user_sync.reconcile_progress where not dry_run and finished_at is null`;
      if (!p || p.phase === "profiles") continue;
      const [u] = p.phase === "auth"
        ? await side`select id from auth.users where ctid > ${p.after}::tid and ctid < ${`(${p.until},0)`}::tid offset 300 limit 1`
        : await side`select id from auth.users where id > ${p.last_id} order by id offset 300 limit 1`;
      if (!u) continue;
      const op = k++ % 2 === 0 ? "phone change" : "hard delete";
      const t = await time(() =>
        op === "hard delete"
          ? side`delete from auth.users where id = ${u.id}`
          : side`update auth.users set phone = ${
            "1555" + String(k).padStart(7, "0")
          }, updated_at = now() where id = ${u.id}`
      );
      waits.push({ op, ms: t.ms });
    }
  })();
  const raced = await heal(`heal with Auth writes racing ${fmtN(size)}`);
  racing = false;
  await race;
  row.longest_call_ms = round(Math.max(longest, raced.longest_call_ms), 0);
  const maxWait = (op: string) =>
    round(Math.max(0, ...waits.filter((w) => w.op === op).map((w) => w.ms)), 0);
  Object.assign(row, {
    auth_wait_max_ms: {
      hard_delete: maxWait("hard delete"),
      phone_change: maxWait("phone change"),
      samples: waits.length,
    },
    raced_heal_errors: raced.report.errors,
  });
  log(
    `Auth writes during calls: ${waits.length}, longest wait: delete ${
      maxWait("hard delete")
    } ms, phone ${maxWait("phone change")} ms`,
  );
  const [{ n }] = await admin`select count(*)::int as n from auth.users`;
  generated = n;
  await heal(`settle ${fmtN(size)}`);
  await checkClean(`after the race ${fmtN(size)}`, n);

  // A bulk change behind the system's back, each kind in one statement (an import, a
  // migration of the app): its new row versions sit together at the end of each table, so
  // a stretch sized by the rows before it would hold tens of thousands of candidates.
  // 10% renamed in Auth, 5% of profiles tampered with, 5% deleted.
  await admin.begin(async (tx) => {
    await tx`set local session_replication_role = replica`;
    await tx`update auth.users set raw_user_meta_data = raw_user_meta_data || '{"full_name": "Bulk"}' where id in (select id from auth.users order by hashtext(id::text || 'b') limit ${
      Math.round(n / 10)
    })`;
    await tx`update public.users set email = 'bulk.' || email where id in (select id from public.users order by hashtext(id::text || 't') limit ${
      Math.round(n / 20)
    })`;
    await tx`delete from public.users where id in (select id from public.users order by hashtext(id::text || 'd') limit ${
      Math.round(n / 20)
    })`;
  });
  const bulk = await heal(`bulk change (10% renamed, 5% tampered, 5% deleted) ${fmtN(size)}`);
  await checkClean(`after the bulk change ${fmtN(size)}`, n);
  Object.assign(row, {
    bulk_change_ms: round(bulk.ms, 0),
    bulk_change_calls: bulk.calls,
    bulk_change_longest_call_ms: round(bulk.longest_call_ms, 0),
    bulk_change_report: { inserted: bulk.report.inserted, updated: bulk.report.updated },
  });
  row.longest_call_ms = round(Math.max(row.longest_call_ms as number, bulk.longest_call_ms), 0);

  // sync-all: POSTs of 120 s against a cold table, RSS of the function process
  if (!flags["skip-sync-all"]) {
    const serviceKey = await apiKey("service_role", LOCAL_JWT_SECRET);
    const fn = await startFunction(ROOT, "sync-all", Number(flags["api-port"]), {
      SUPABASE_DB_URL: dbUrl,
      SUPABASE_SERVICE_ROLE_KEY: serviceKey,
      SUPABASE_ANON_KEY: await apiKey("anon", LOCAL_JWT_SECRET),
      USER_SYNC_JWT_SECRET: LOCAL_JWT_SECRET,
      USER_SYNC_SYNC_ALL_BUDGET_MS: String(Number(flags["sync-all-budget-s"]) * 1000),
      USER_SYNC_RECONCILE_CALL_MS: String(CALL_MS),
    });
    await admin`truncate public.users`;
    await admin`checkpoint`;
    const posts: Record<string, unknown>[] = [];
    for (let i = 0; i < Number(flags["sync-all-runs"]); i++) {
      let peak = 0;
      const poll = setInterval(() => (peak = Math.max(peak, procRssBytes(fn.proc.pid))), 100);
      const t = await time(() =>
        fetch(fn.url, {
          method: "POST",
          headers: {
            authorization: `Bearer ${serviceKey}`,
            apikey: serviceKey,
            "content-type": "application/json",
          },
          body: JSON.stringify({ source: "cron" }),
        })
      );
      const body = await t.value.json();
      clearInterval(poll);
      posts.push({
        http: t.value.status,
        ms: round(t.ms, 0),
        calls: body.calls,
        complete: body.complete,
        inserted: body.inserted,
        examined: body.progress?.examined,
        total: body.progress?.total,
        longest_call_ms: body.longest_call_ms,
        rss_mb: round(procRssBytes(fn.proc.pid) / 2 ** 20, 1),
        peak_rss_mb: round(peak / 2 ** 20, 1),
      });
      log(`sync-all POST ${i + 1}: ${JSON.stringify(posts[posts.length - 1])}`);
      if (body.complete) break;
    }
    await stopFunction(fn);
    row.sync_all_posts = posts;
    await heal(`settle after sync-all ${fmtN(size)}`);
    await checkClean(`after sync-all ${fmtN(size)}`, generated);
  }
}

results.checks = checks;
results.duration_s = Math.round((Date.now() - started) / 1000);
results.load_average_end = os.loadavg().map((x) => round(x));
results.command = `npm run bench -- heal --sizes ${SIZES.join(",")}`;
writeFileSync(flags.out!, JSON.stringify(results, null, 2) + "\n");
log(
  `done in ${results.duration_s} s; ${
    checks.filter((c) => c.ok).length
  }/${checks.length} checks pass; ${flags.out}`,
);
await Promise.all([admin.end(), pg.end(), side.end()]);
Deno.exit(checks.every((c) => c.ok) ? 0 : 1);
