// Admin search scenario (issue 13): `npm run bench -- --scenario search [--users N]`.
//   1. N provider-shaped auth users (bench/sql/setup.sql) and their profiles (reconcile);
//   2. listUsers of @user-sync/client, as an admin, through real supabase-js and the local
//      gateway's Data API stand-in (what a dashboard does): search terms of several
//      selectivities, page 1 and deep pages, the unfiltered list; p50/p95 per kind and
//      over all searches, plus each query's plan (index used or not);
//   3. what the search indexes cost the writes Supabase Auth makes: sign-ups (INSERT on
//      auth.users, the trigger inserting the profile) and sign-ins (UPDATE of
//      last_sign_in_at, the trigger updating the profile), with the indexes, without them
//      (dropped), and with them again (rebuilt: the build time is what the migration
//      costs a live 1M table), single-row statements as supabase_auth_admin.
// Writes bench/search.json and bench/SEARCH.md.
import { parseArgs } from "node:util";
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { SignJWT } from "jose";
import { createClient } from "@supabase/supabase-js";
import { connect, type DbConfig, median, signUp } from "./lib/pg.ts";
import { startLocalStack } from "../platform/gateway.ts";
import { LOCAL_JWT_SECRET } from "../platform/local.ts";
import { createUserSyncClient, type ListUsersOptions } from "../client/src/index.ts";

const HELP = `Usage: npm run bench -- --scenario search [options]
  --users N        profiles to search (default 1000000)
  --reps N         repetitions of each search (default 10)
  --write-rounds N rounds of sign-ups and sign-ins per phase (default 3)
  --write-batch N  sign-ups (and sign-ins) per round (default 500)
  --out FILE       JSON results (default bench/search.json); markdown: bench/SEARCH.md`;

/** The index definitions of supabase/schemas/20_profiles.sql (admin search block). */
const SEARCH_INDEXES = [
  "create index users_email_trgm_idx on public.users using gin (email extensions.gin_trgm_ops)",
  "create index users_name_trgm_idx on public.users using gin (name extensions.gin_trgm_ops)",
  "create index users_created_at_idx on public.users (created_at desc, id)",
];

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const fmtN = (n: number) => n.toLocaleString("en-US");

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
}

export async function main(args: string[]): Promise<void> {
  const { values: flags } = parseArgs({
    args,
    options: {
      scenario: { type: "string" },
      users: { type: "string", default: "1000000" },
      reps: { type: "string", default: "10" },
      "write-rounds": { type: "string", default: "3" },
      "write-batch": { type: "string", default: "500" },
      "db-port": { type: "string" },
      out: { type: "string", default: "bench/search.json" },
      help: { type: "boolean", default: false },
    },
  });
  if (flags.help) {
    console.log(HELP);
    return;
  }
  const USERS = Number(flags.users!.replace(/_/g, ""));
  const REPS = Number(flags.reps);
  const ROUNDS = Number(flags["write-rounds"]);
  const BATCH = Number(flags["write-batch"]);
  const DB_PORT = Number(flags["db-port"] ?? Deno.env.get("USER_SYNC_DB_PORT") ?? 54500);
  const ROOT = new URL("..", import.meta.url).pathname;
  const started = Date.now();
  const log = (msg: string) =>
    console.error(`[search ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${msg}`);

  const cfg: DbConfig = { host: "127.0.0.1", port: DB_PORT, database: "postgres", password: "postgres" };
  const dbUrl = `postgresql://postgres:postgres@127.0.0.1:${DB_PORT}/postgres`;
  const admin = connect(cfg, "supabase_admin");
  const pg = connect(cfg, "postgres");

  // 1. data -----------------------------------------------------------------
  await admin.unsafe(readFileSync(`${ROOT}bench/sql/setup.sql`, "utf8"));
  const [{ have }] = await admin`select count(*)::int as have from public.users`;
  if (have !== USERS) {
    await admin`truncate auth.users cascade`;
    await admin`truncate user_sync.errors, user_sync.runs`;
    const t0 = performance.now();
    for (let from = 1; from <= USERS; from += 250_000) {
      await admin`select bench.gen_users(${from}, ${Math.min(USERS, from + 249_999)})`;
    }
    log(`generated ${fmtN(USERS)} auth users in ${round((performance.now() - t0) / 1000)} s`);
    const t1 = performance.now();
    const [{ r }] = await pg`select user_sync.reconcile(false, 'bench') as r`;
    log(`reconcile created ${fmtN((r as { inserted: number }).inserted)} profiles in ${round((performance.now() - t1) / 1000)} s`);
  }
  await admin`vacuum analyze public.users`;
  await admin`vacuum analyze auth.users`;

  // 2. search through the client ---------------------------------------------
  const stack = await startLocalStack({ dbUrl, port: 0, hooks: {} });
  const [adminRow] = await admin`select id from public.users where role = 'admin' and deleted_at is null limit 1`;
  const token = await new SignJWT({ sub: adminRow.id, role: "authenticated", aud: "authenticated" })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt()
    .setExpirationTime("2h")
    .sign(new TextEncoder().encode(LOCAL_JWT_SECRET));
  const supabase = createClient(stack.url, stack.anonKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    global: { headers: { Authorization: `Bearer ${token}` } },
  });
  const users = createUserSyncClient(supabase);

  // Terms of several selectivities, taken from the data (deterministic).
  const sample = await admin<{ email: string; name: string | null }[]>`
    select email, name from public.users where email is not null and provider = 'email'
    order by id limit 5`;
  const kinds: { kind: string; options: ListUsersOptions }[] = [];
  for (const s of sample) kinds.push({ kind: "a person's email", options: { search: s.email.split("@")[0] } });
  for (const s of sample.slice(0, 3)) {
    kinds.push({ kind: "5 digits of an email", options: { search: s.email.replace(/\D/g, "").slice(0, 5) } });
  }
  kinds.push(
    { kind: "a full name", options: { search: "Grace Hopper" } },
    { kind: "a full name", options: { search: "edsger dijkstra" } },
    { kind: "a full name, 2nd page", options: { search: "Grace Hopper", page: 2 } },
    { kind: "a person's email, admins only", options: { search: sample[0].email.split("@")[0], role: "admin" } },
    { kind: "a last name (5% of users)", options: { search: "Knuth" } },
    { kind: "a domain (5% of users)", options: { search: "contoso" } },
    { kind: "unfiltered list, page 1", options: {} },
    { kind: "unfiltered list, page 200", options: { page: 200 } },
    { kind: "google users, page 1", options: { provider: "google" } },
  );
  const broad = new Set(["a last name (5% of users)", "a domain (5% of users)", "google users, page 1"]);
  for (const k of kinds) await users.listUsers(k.options); // warm-up
  const samples = new Map<string, number[]>();
  const totals = new Map<string, number>();
  for (let rep = 0; rep < REPS; rep++) {
    for (const k of kinds) {
      const t0 = performance.now();
      const res = await users.listUsers(k.options);
      const ms = performance.now() - t0;
      const key = `${k.kind}: ${JSON.stringify(k.options)}`;
      samples.set(key, [...(samples.get(key) ?? []), ms]);
      totals.set(key, res.total);
    }
  }
  // The plan of list_users' page query for a search (as the admin).
  const plan = async (term: string) => {
    const rows = await admin.begin(async (tx) => {
      await tx`select set_config('request.jwt.claims', ${JSON.stringify({ sub: adminRow.id, role: "authenticated" })}, true)`;
      await tx`set local role authenticated`;
      const pattern = `%${term}%`;
      return await tx.unsafe(
        `explain (analyze, buffers off, costs off) select v.id from user_sync.listed_profiles v
         where (v.email ilike $1 or v.name ilike $1) and v.deleted_at is null
         order by v.created_at desc, v.id limit 50`,
        [pattern],
      );
    });
    return rows.map((r) => r["QUERY PLAN"] as string);
  };
  const personPlan = await plan(sample[0].email.split("@")[0]);
  const searchMs = [...samples.entries()].filter(([k]) => !broad.has(k.split(": ")[0]) && !k.startsWith("unfiltered"))
    .flatMap(([, v]) => v);
  const byKind = [...samples.entries()].map(([key, ms]) => ({
    query: key,
    total: totals.get(key)!,
    p50_ms: round(quantile(ms, 0.5)),
    p95_ms: round(quantile(ms, 0.95)),
  }));
  const searchP95 = round(quantile(searchMs, 0.95));
  const searchP50 = round(quantile(searchMs, 0.5));
  log(`search (selective terms): p50 ${searchP50} ms, p95 ${searchP95} ms over ${searchMs.length} calls`);
  for (const k of byKind) log(`  ${k.query} → total ${fmtN(k.total)}: p50 ${k.p50_ms} ms, p95 ${k.p95_ms} ms`);
  await stack.close();

  // 3. write cost of the indexes ---------------------------------------------
  const auth = connect(cfg, "supabase_auth_admin"); // search_path = auth, as GoTrue
  const signInIds = (await admin<{ id: string }[]>`
    select id from auth.users tablesample system (1) limit ${ROUNDS * BATCH * 3}`).map((r) => r.id);
  let n = 0;
  let signInAt = 0;
  const signUps = async () => {
    const t0 = performance.now();
    for (let i = 0; i < BATCH; i++) {
      n++;
      const id = crypto.randomUUID();
      const email = `search-signup-${n}@bench.example`;
      await signUp(auth, id, email, `Sign Up ${n}`);
    }
    return BATCH / ((performance.now() - t0) / 1000);
  };
  const signIns = async () => {
    const t0 = performance.now();
    for (let i = 0; i < BATCH; i++) {
      const id = signInIds[signInAt++ % signInIds.length];
      await auth`update users set last_sign_in_at = now(), updated_at = now() where id = ${id}`;
    }
    return BATCH / ((performance.now() - t0) / 1000);
  };
  const phase = async (label: string) => {
    const up: number[] = [];
    const inn: number[] = [];
    await signUps(); // warm-up
    for (let r = 0; r < ROUNDS; r++) {
      up.push(await signUps());
      inn.push(await signIns());
    }
    log(`${label}: sign-ups ${round(median(up), 0)}/s, sign-ins ${round(median(inn), 0)}/s`);
    return { sign_ups_per_s: up.map((x) => round(x, 0)), sign_ins_per_s: inn.map((x) => round(x, 0)) };
  };
  const hot = async () => {
    const [s] = await admin`select n_tup_upd::bigint as upd, n_tup_hot_upd::bigint as hot
      from pg_stat_user_tables where relid = 'public.users'::regclass`;
    return { upd: Number(s.upd), hot: Number(s.hot) };
  };
  const h0 = await hot();
  const withA = await phase("with the search indexes");
  const h1 = await hot();
  for (const def of SEARCH_INDEXES) await admin.unsafe(`drop index public.${def.split(" ")[2]}`);
  const without = await phase("without them");
  const h2 = await hot();
  const builds: { index: string; s: number }[] = [];
  for (const def of SEARCH_INDEXES) {
    const t0 = performance.now();
    await admin.unsafe(def);
    builds.push({ index: def.split(" ")[2], s: round((performance.now() - t0) / 1000) });
    log(`rebuilt ${def.split(" ")[2]} in ${builds[builds.length - 1].s} s`);
  }
  const withB = await phase("with them again");
  await admin`delete from auth.users where email like 'search-signup-%@bench.example'`;
  await auth.end();

  const withUps = [...withA.sign_ups_per_s, ...withB.sign_ups_per_s];
  const withIns = [...withA.sign_ins_per_s, ...withB.sign_ins_per_s];
  const writes = {
    rounds_per_phase: ROUNDS,
    per_round: BATCH,
    with_indexes: { before: withA, after_rebuild: withB },
    without_indexes: without,
    sign_up_ratio: round(median(withUps) / median(without.sign_ups_per_s), 2),
    sign_in_ratio: round(median(withIns) / median(without.sign_ins_per_s), 2),
    hot_update_share_with: round((h1.hot - h0.hot) / Math.max(1, h1.upd - h0.upd), 2),
    hot_update_share_without: round((h2.hot - h1.hot) / Math.max(1, h2.upd - h1.upd), 2),
    index_builds: builds,
  };
  const [sizes] = await admin`select
    pg_relation_size('public.users_email_trgm_idx') as email, pg_relation_size('public.users_name_trgm_idx') as name,
    pg_relation_size('public.users_created_at_idx') as created, pg_relation_size('public.users') as heap`;
  const mb = (x: unknown) => round(Number(x) / 2 ** 20, 0);

  const results = {
    command: `npm run bench -- ${args.filter((a, i, all) => a !== "--db-port" && all[i - 1] !== "--db-port").join(" ")}`,
    date: new Date().toISOString(),
    machine: {
      cores: os.cpus().length,
      cpu: os.cpus()[0]?.model ?? "unknown",
      load_average: os.loadavg().map((x) => round(x, 2)),
    },
    users: USERS,
    reps: REPS,
    search: { p50_ms: searchP50, p95_ms: searchP95, calls: searchMs.length, by_query: byKind, plan: personPlan },
    writes,
    index_mb: { email_trgm: mb(sizes.email), name_trgm: mb(sizes.name), created_at: mb(sizes.created), table: mb(sizes.heap) },
    total_s: round((Date.now() - started) / 1000, 0),
  };
  writeFileSync(`${ROOT}${flags.out}`, JSON.stringify(results, null, 2) + "\n");
  const md = [
    `# Admin search benchmark`,
    ``,
    `\`${results.command}\` — ${results.date}, ${results.machine.cores} cores (${results.machine.cpu}), load ${results.machine.load_average.join(" / ")}, ${results.total_s} s.`,
    ``,
    `listUsers of @user-sync/client as an admin (the RPC public.list_users), through supabase-js, the local gateway and its Data API stand-in (one transaction per request as \`authenticated\`), ${fmtN(USERS)} profiles, ${REPS} calls per query after a warm-up. **Search with a selective term (a person's email or name, 5 digits of an email): p50 ${searchP50} ms, p95 ${searchP95} ms** over ${searchMs.length} calls (goal: p95 ≤ 100 ms).`,
    ``,
    `| query | total | p50 | p95 |`,
    `|---|---:|---:|---:|`,
    ...byKind.map((k) => `| ${k.query.replace(/\|/g, "\\|")} | ${fmtN(k.total)} | ${k.p50_ms} ms | ${k.p95_ms} ms |`),
    ``,
    `Plan of list_users' page query for a person's email (email ilike '%term%' or name ilike '%term%', newest first, 50 rows), as the admin:`,
    ``,
    "```",
    ...personPlan,
    "```",
    ``,
    `## What the indexes cost the writes of Supabase Auth`,
    ``,
    `Single-row statements as supabase_auth_admin on the ${fmtN(USERS)}-user table, ${ROUNDS} rounds of ${BATCH} per phase; phases: with the indexes, without (dropped), with them again (rebuilt).`,
    ``,
    `| | with the indexes (before / after rebuild) | without | ratio (medians) |`,
    `|---|---|---|---:|`,
    `| sign-ups/s (INSERT; the trigger inserts the profile) | ${withA.sign_ups_per_s.join(", ")} / ${withB.sign_ups_per_s.join(", ")} | ${without.sign_ups_per_s.join(", ")} | ${writes.sign_up_ratio}× |`,
    `| sign-ins/s (UPDATE last_sign_in_at; the trigger updates the profile) | ${withA.sign_ins_per_s.join(", ")} / ${withB.sign_ins_per_s.join(", ")} | ${without.sign_ins_per_s.join(", ")} | ${writes.sign_in_ratio}× |`,
    `| share of HOT profile updates | ${writes.hot_update_share_with} | ${writes.hot_update_share_without} | |`,
    ``,
    `Index builds at ${fmtN(USERS)} profiles (what \`create index\` in the migration blocks writes for): ${builds.map((b) => `${b.index} ${b.s} s`).join(", ")}. Sizes: email ${results.index_mb.email_trgm} MB, name ${results.index_mb.name_trgm} MB, created_at ${results.index_mb.created_at} MB (table ${results.index_mb.table} MB).`,
    ``,
  ].join("\n");
  writeFileSync(`${ROOT}bench/SEARCH.md`, md);
  log(`wrote ${flags.out} and bench/SEARCH.md`);
  await admin.end();
  await pg.end();
}
