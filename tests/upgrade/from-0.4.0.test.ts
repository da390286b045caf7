// Upgrade test from 0.4.0: a database runs every migration of 0.4.0 (installed with
// `supabase db push`), Auth's connection has signed users up through 0.4.0's trigger (its
// plans cached in that session), and a heal is left unfinished. Then `supabase db push`
// applies today's migrations, and:
//   - a sign-up on Auth's connection opened before the upgrade gets its profile at once
//     (0.5.0: the trigger inserts it in one statement), with nothing recorded as failed;
//   - the heal continues and ends with every profile in place, no error recorded (0.5.0:
//     a batch's insert skips the rows Auth holds instead of waiting for them).
// Runs on its own cluster: USER_SYNC_UPGRADE_DB_PORT (54360), one file after another (_released.ts).
import assert from "node:assert/strict";
import { connect, insertAuthUser, type Sql } from "../_support/db.ts";
import {
  assertEveryProfileHealed,
  healUntilComplete,
  leaveHealUnfinished,
  PORT,
  upgradeFrom,
} from "./_released.ts";

/** A sign-up as GoTrue writes it, on Auth's own connection (one session: its cached plans). */
const signUp = (auth: Sql, id: string, name: string) =>
  auth.begin((tx) =>
    insertAuthUser(tx, {
      id,
      email: `${name.replace(" ", "")}@upgrade.test`,
      appMeta: { provider: "email", providers: ["email"] },
      userMeta: { full_name: name },
    })
  );

Deno.test({
  name: "upgrade: 0.4.0 with Auth's connection open and a heal unfinished, then today's migrations",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    let auth: Sql | undefined;
    await upgradeFrom(t, "0.4.0", {
      onRelease: async ({ admin, setup, closeAtEnd }) => {
        await setup(
          "Auth's connection signs users up through 0.4.0's trigger; a heal stops unfinished",
          async () => {
            auth = closeAtEnd(
              connect("supabase_auth_admin", { port: PORT, max: 1, app: "gotrue" }),
            );
            for (let k = 1; k <= 6; k++) {
              await signUp(auth, `0a040000-0000-4000-8000-00000000000${k}`, `Before ${k}`);
            }
            const [{ n }] =
              await admin()`select count(*)::int as n from public.users where name like 'Before %'`;
            assert.equal(n, 6);
            await leaveHealUnfinished(admin());
          },
        );
      },
      afterUpgrade: async ({ admin }) => {
        await t.step(
          "a sign-up on Auth's connection opened before the upgrade gets its profile at once",
          async () => {
            const id = "0a040000-0000-4000-8000-000000000007";
            await signUp(auth!, id, "After");
            const [p] =
              await admin()`select name, role, provider from public.users where id = ${id}`;
            assert.deepEqual({ ...p }, { name: "After", role: "user", provider: "email" });
            const [{ n }] =
              await admin()`select count(*)::int as n from user_sync.errors where resolved_at is null`;
            assert.equal(n, 0, "no sync recorded as failed");
          },
        );

        await t.step(
          "the heal continues and ends with every profile in place, no error recorded",
          async () => {
            const s = await assertEveryProfileHealed(admin(), await healUntilComplete(admin()));
            assert.equal(s.open_errors, 0, JSON.stringify(s));
          },
        );
      },
    });
  },
});
