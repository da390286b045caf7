// What the upgrade scenarios from a release share: their cluster's port, steps that stop
// the scenario at the first failed setup step, the scenario's course (the release
// installed, its data, today's migrations pushed, the checks), users left without a
// profile behind the trigger's back, and a heal driven in bounded calls until its pass is
// complete.
import assert from "node:assert/strict";
import { type Cluster, cluster } from "../_support/cluster.ts";
import { connect, type Sql } from "../_support/db.ts";

/** Every scenario runs on its own cluster, one file after another. */
export const PORT = Number(Deno.env.get("USER_SYNC_UPGRADE_DB_PORT") || "54360");

/** The last migration of each release since 0.2.0 (CHANGELOG.md). */
export const LAST_MIGRATION_OF = {
  "0.2.0": "20261129170200",
  "0.3.0": "20261129200000",
  "0.4.0": "20261129210100",
  "0.5.0": "20261130200000",
} as const;

/**
 * A release installed as its users installed it (`supabase db push` of every migration up
 * to its last) on the scenario's cluster; answers an admin connection to it.
 */
async function installRelease(
  db: Cluster,
  work: string,
  version: keyof typeof LAST_MIGRATION_OF,
): Promise<Sql> {
  await db.installReleased(work, (file) => file.split("_")[0] <= LAST_MIGRATION_OF[version]);
  const sql = connect("supabase_admin", {
    port: PORT,
    max: 2,
    app: `user-sync-upgrade-${version}`,
  });
  const [{ v }] = await sql`select user_sync.version() as v`;
  assert.equal(v, version);
  return sql;
}

/** Users without a profile when a heal starts: more than one bounded call can examine. */
export const UNHEALED = 30_000;

/** A setup step runs only while every step before it passed; ok() tells whether they all did. */
export function setupSteps(t: Deno.TestContext) {
  let ok = true;
  const step = (name: string, fn: (t: Deno.TestContext) => Promise<void>) =>
    ok ? t.step(name, fn).then((passed) => (ok = passed)) : Promise.resolve(false);
  return { step, ok: () => ok };
}

/** n auth users named 'Heal k' (heal<k>@example.test), inserted with the trigger bypassed. */
async function seedUsersWithoutProfile(sql: Sql, n: number) {
  await sql.begin(async (tx) => {
    await tx`set local session_replication_role = replica`; // behind the trigger's back
    await tx`
      insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
      select '00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated',
        'heal' || k || '@example.test', '{"provider": "email", "providers": ["email"]}',
        jsonb_build_object('full_name', 'Heal ' || k), now(), now()
      from generate_series(1, ${n}) k`;
  });
}

/**
 * UNHEALED users without a profile and a heal left unfinished: one bounded call of 1 ms,
 * which cannot complete the pass.
 */
export async function leaveHealUnfinished(sql: Sql): Promise<void> {
  await seedUsersWithoutProfile(sql, UNHEALED);
  const [{ r }] = await sql`select user_sync.reconcile(false, 'cron', 1) as r`;
  assert.equal(
    r.complete,
    false,
    `one call of 1 ms leaves the heal unfinished: ${JSON.stringify(r)}`,
  );
}

/**
 * After a heal of `calls` calls: nothing missing, orphaned or drifted, and every one of the
 * UNHEALED users has a profile. Answers user_sync.status().
 */
export async function assertEveryProfileHealed(
  sql: Sql,
  calls: number,
): Promise<Record<string, number>> {
  const [{ s }] = await sql`select user_sync.status() as s`;
  assert.deepEqual([s.missing, s.orphaned, s.drifted], [0, 0, 0], JSON.stringify(s));
  const [{ n }] = await sql`select count(*)::int as n from public.users where name like 'Heal %'`;
  assert.equal(n, UNHEALED, `${n} of the ${UNHEALED} healed profiles, in ${calls} calls`);
  return s;
}

/** Bounded calls of 500 ms (as the cron job makes them) until the pass is complete; how many. */
export async function healUntilComplete(sql: Sql): Promise<number> {
  let calls = 0;
  for (let complete = false; !complete; calls++) {
    assert.ok(calls < 500, "the heal ends");
    const [{ r }] = await sql`select user_sync.reconcile(false, 'cron', 500) as r`;
    assert.equal(r.status, "ok", JSON.stringify(r));
    complete = r.complete === true;
  }
  return calls;
}

/** The upgrade itself, as users run it: today's migrations applied by the Supabase CLI. */
const PUSH_TODAY = "today's migrations applied by the Supabase CLI as postgres (db push)";
async function pushToday(
  db: Cluster,
  sql: Sql,
  from: keyof typeof LAST_MIGRATION_OF,
): Promise<void> {
  await db.db("push");
  const [{ v }] = await sql`select user_sync.version() as v`;
  assert.notEqual(v, from);
}

/** A scenario's end, whatever happened: its connections closed, its cluster stopped, its files gone. */
async function endScenario(
  db: Cluster,
  work: string,
  ...conns: (Sql | undefined)[]
): Promise<void> {
  for (const c of conns) await c?.end({ timeout: 2 });
  await db.stop().catch(() => {});
  await Deno.remove(work, { recursive: true }).catch(() => {});
}

/** What a scenario's own parts work with. */
export interface Scenario {
  /** The admin connection to the scenario's database (once the release is installed). */
  admin: () => Sql;
  /** A setup step: runs only while every step before it passed. */
  setup: (name: string, fn: (t: Deno.TestContext) => Promise<void>) => Promise<boolean>;
  /** A connection the scenario opens itself, closed at its end. */
  closeAtEnd: (conn: Sql) => Sql;
}

/**
 * An upgrade scenario from `version` on its own cluster: the release installed as its users
 * installed it, `onRelease` (setup steps: the data only that release makes), today's
 * migrations pushed, then `afterUpgrade` (the checks) if every setup step passed. Its end
 * (connections, cluster, files) whatever happened.
 */
export async function upgradeFrom(
  t: Deno.TestContext,
  version: keyof typeof LAST_MIGRATION_OF,
  parts: {
    onRelease: (s: Scenario) => Promise<void>;
    afterUpgrade: (s: Scenario) => Promise<void>;
  },
): Promise<void> {
  const db = await cluster("pg-upgrade", PORT);
  const work = await Deno.makeTempDir({ prefix: `user-sync-v${version}-` });
  let sql: Sql | undefined;
  const opened: Sql[] = [];
  const { step: setup, ok } = setupSteps(t);
  const scenario: Scenario = {
    admin: () => sql!,
    setup,
    closeAtEnd: (conn) => {
      opened.push(conn);
      return conn;
    },
  };
  try {
    await setup(
      `${version} installed with supabase db push (every migration up to its last)`,
      async () => {
        sql = await installRelease(db, work, version);
      },
    );
    await parts.onRelease(scenario);
    await setup(PUSH_TODAY, () => pushToday(db, scenario.admin(), version));
    if (!ok()) return;
    await parts.afterUpgrade(scenario);
  } finally {
    await endScenario(db, work, ...opened, sql);
  }
}
