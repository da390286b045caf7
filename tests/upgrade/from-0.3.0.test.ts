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
import {
  assertEveryProfileHealed,
  healUntilComplete,
  leaveHealUnfinished,
  UNHEALED,
  upgradeFrom,
} from "./_released.ts";

Deno.test({
  name: "upgrade: 0.3.0 with a heal stopped in the middle of its walk, then today's migrations",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    let examinedBefore = 0;
    let startedBefore = "";
    await upgradeFrom(t, "0.3.0", {
      onRelease: async ({ admin, setup }) => {
        await setup(
          `0.3.0's data: ${
            UNHEALED.toLocaleString("en-US")
          } users without a profile, a heal stopped mid-walk`,
          async () => {
            await leaveHealUnfinished(admin());
            const [p] =
              await admin()`select phase, walk_after is not null as walking, examined::int as examined,
            started_at::text as started from user_sync.reconcile_progress where not dry_run`;
            assert.deepEqual(
              [p.phase, p.walking],
              ["auth", true],
              "the pass stands in the middle of its walk of auth.users",
            );
            examinedBefore = p.examined;
            startedBefore = p.started;
          },
        );
      },
      afterUpgrade: async ({ admin }) => {
        await t.step(
          "the heal continues where 0.3.0 stopped and ends with every profile in place",
          async () => {
            const [{ r: first }] = await admin()`select user_sync.reconcile(false, 'cron', 1) as r`;
            assert.ok(
              first.examined > examinedBefore,
              `the pass went on from ${examinedBefore} examined: ${JSON.stringify(first)}`,
            );
            const [{ started }] =
              await admin()`select started_at::text as started from user_sync.reconcile_progress where not dry_run`;
            assert.equal(started, startedBefore, "the same pass, not a new one");
            const calls = 1 + (first.complete === true ? 0 : await healUntilComplete(admin()));
            await assertEveryProfileHealed(admin(), calls);
          },
        );

        await t.step(
          "a bulk rename behind the triggers' back is healed a bounded batch at a time",
          async () => {
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
          },
        );
      },
    });
  },
});
