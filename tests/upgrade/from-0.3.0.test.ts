// Upgrade test from 0.3.0: a database runs every migration of 0.3.0 (installed with
// `supabase db push`) with a heal left unfinished in the middle of its walk of auth.users
// (its state in user_sync.reconcile_progress, as 0.3.0's bounded calls leave it). Then
// `supabase db push` applies today's migrations, and:
//   - the heal continues where 0.3.0 stopped (not from the start) and ends with every
//     profile in place;
//   - a bulk change behind the triggers' back is healed a bounded batch at a time (0.4.0:
//     a batch writes at most its share of profiles, however the rows cluster).
// Runs on its own cluster: USER_SYNC_UPGRADE_DB_PORT (54360), one file after another (_released.ts).
import assert from "node:assert/strict";
import { cluster } from "../_support/cluster.ts";
import type { Sql } from "../_support/db.ts";
import {
  endScenario,
  healUntilComplete,
  installRelease,
  PORT,
  pushToday,
  PUSH_TODAY,
  seedUsersWithoutProfile,
  setupSteps,
  UNHEALED,
} from "./_released.ts";

Deno.test({
  name: "upgrade: 0.3.0 with a heal stopped in the middle of its walk, then today's migrations",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const db = await cluster("pg-upgrade", PORT);
    const work = await Deno.makeTempDir({ prefix: "user-sync-v0.3.0-" });
    let sql: Sql | undefined;
    const { step: setup, ok } = setupSteps(t);
    const admin = () => sql!;
    let examinedBefore = 0;
    let startedBefore = "";
    try {
      await setup("0.3.0 installed with supabase db push (every migration up to its last)", async () => {
        sql = await installRelease(db, work, "0.3.0");
      });

      await setup(`0.3.0's data: ${UNHEALED.toLocaleString("en-US")} users without a profile, a heal stopped mid-walk`, async () => {
        await seedUsersWithoutProfile(admin(), UNHEALED);
        const [{ r }] = await admin()`select user_sync.reconcile(false, 'cron', 1) as r`;
        assert.equal(r.complete, false, `one call of 1 ms leaves the heal unfinished: ${JSON.stringify(r)}`);
        const [p] = await admin()`select phase, walk_after is not null as walking, examined::int as examined,
            started_at::text as started from user_sync.reconcile_progress where not dry_run`;
        assert.deepEqual([p.phase, p.walking], ["auth", true], "the pass stands in the middle of its walk of auth.users");
        examinedBefore = p.examined;
        startedBefore = p.started;
      });

      await setup(PUSH_TODAY, () => pushToday(db, admin(), "0.3.0"));
      if (!ok()) return;

      await t.step("the heal continues where 0.3.0 stopped and ends with every profile in place", async () => {
        const [{ r: first }] = await admin()`select user_sync.reconcile(false, 'cron', 1) as r`;
        assert.ok(first.examined > examinedBefore, `the pass went on from ${examinedBefore} examined: ${JSON.stringify(first)}`);
        const [{ started }] = await admin()`select started_at::text as started from user_sync.reconcile_progress where not dry_run`;
        assert.equal(started, startedBefore, "the same pass, not a new one");
        const calls = 1 + (first.complete === true ? 0 : await healUntilComplete(admin()));
        const [{ s }] = await admin()`select user_sync.status() as s`;
        assert.deepEqual([s.missing, s.orphaned, s.drifted], [0, 0, 0], JSON.stringify(s));
        const [{ n }] = await admin()`select count(*)::int as n from public.users where name like 'Heal %'`;
        assert.equal(n, UNHEALED, `${n} of the ${UNHEALED} healed profiles, in ${calls} calls`);
      });

      await t.step("a bulk rename behind the triggers' back is healed a bounded batch at a time", async () => {
        await admin()`select user_sync.reconcile(false, 'cron')`; // a finished pass: incremental from here
        await admin().begin(async (tx) => {
          await tx`set local session_replication_role = replica`;
          await tx`update auth.users set raw_user_meta_data = '{"full_name": "Bulk"}' where email like 'heal%'`;
        });
        let most = 0;
        let renamed = 0;
        for (let complete = false, calls = 0; !complete; calls++) {
          assert.ok(calls < 500, "the heal ends");
          const r = await admin().begin(async (tx) => {
            await tx`set local user_sync.reconcile_batch_writes = 2000`;
            const [{ r }] = await tx`select user_sync.reconcile(false, 'cron', 0) as r`;
            return r;
          });
          assert.equal(r.status, "ok", JSON.stringify(r));
          most = Math.max(most, r.updated);
          renamed += r.updated;
          complete = r.complete === true;
        }
        assert.equal(renamed, UNHEALED, "every renamed user's profile follows");
        assert.ok(most <= 2000, `one batch wrote ${most} profiles, more than its 2,000`);
      });
    } finally {
      await endScenario(db, work, sql);
    }
  },
});
