// Upgrade test from 0.2.0: a database runs every migration of 0.2.0 (installed with
// `supabase db push`) and holds what only 0.2.0 makes: role changes stamped in
// raw_app_meta_data by 0.2.0's role-stamp trigger, and a heal left unfinished by a bounded
// reconcile call (its state in user_sync.reconcile_progress). Then `supabase db push`
// applies today's migrations, and:
//   - 0.2.0's stamps still decide: a stale copy of the metadata written back (GoTrue's
//     read-modify-write) keeps the newer role; the next role change is stamped after them;
//   - the unfinished heal ends: bounded calls continue until complete, and every missing
//     profile is there, nothing drifted or orphaned;
//   - a sign-in fires one trigger of ours and a metadata change still syncs at once.
// The assertions name only what a user notices, not how a release stores it.
//
// Runs on its own cluster: USER_SYNC_UPGRADE_DB_PORT (54360), one file after another (_released.ts).
import assert from "node:assert/strict";
import { asAuth, insertAuthUser } from "../_support/db.ts";
import {
  assertEveryProfileHealed,
  healUntilComplete,
  leaveHealUnfinished,
  UNHEALED,
  upgradeFrom,
} from "./_released.ts";

Deno.test({
  name: "upgrade: 0.2.0 with role stamps and an unfinished heal, then today's migrations",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const promoted = crypto.randomUUID();
    const member = crypto.randomUUID();
    let staleCopy: Record<string, unknown> = {};
    await upgradeFrom(t, "0.2.0", {
      onRelease: async ({ admin, setup }) => {
        await setup(
          "0.2.0's data: a role change it stamped, and GoTrue's copy of the metadata from before",
          async () => {
            for (const id of [promoted, member]) {
              await admin().begin((tx) =>
                insertAuthUser(tx, {
                  id,
                  email: `${id}@example.test`,
                  appMeta: { provider: "email", providers: ["email"] },
                  userMeta: { full_name: "Up Grade" },
                })
              );
            }
            // GoTrue reads the metadata (its copy), then an admin promotes the user in SQL.
            [{ app: staleCopy }] =
              await admin()`select raw_app_meta_data as app from auth.users where id = ${promoted}`;
            await asAuth(admin(), (tx) =>
              tx`
          update users set raw_app_meta_data = raw_app_meta_data || '{"role": "admin"}' where id = ${promoted}`);
            const [{ stamp, role }] = await admin()`
          select raw_app_meta_data -> 'user_sync_role_stamp' ->> 'v' as stamp, raw_app_meta_data ->> 'role' as role
          from auth.users where id = ${promoted}`;
            assert.deepEqual(
              { stamp, role },
              { stamp: "1", role: "admin" },
              "0.2.0 stamped the role change",
            );
          },
        );

        await setup(
          `0.2.0's data: ${
            UNHEALED.toLocaleString("en-US")
          } users without a profile, a heal left unfinished`,
          async () => {
            await leaveHealUnfinished(admin());
            const [{ missing }] = await admin()`select count(*)::int as missing from auth.users au
          where not exists (select 1 from public.users u where u.id = au.id)`;
            assert.ok(missing > 0, "profiles are still missing");
          },
        );
      },
      afterUpgrade: async ({ admin }) => {
        await t.step(
          "0.2.0's stamp still decides: GoTrue's stale copy written back keeps the admin",
          async () => {
            const written = JSON.stringify({ ...staleCopy, providers: ["email", "google"] });
            await asAuth(admin(), (tx) =>
              tx`
          update users set raw_app_meta_data = ${written}::text::jsonb where id = ${promoted}`);
            const [row] = await admin()`
          select au.raw_app_meta_data ->> 'role' as auth_role, au.raw_app_meta_data -> 'providers' as auth_providers,
            p.role, p.providers
          from auth.users au join public.users p using (id) where au.id = ${promoted}`;
            assert.deepEqual(
              { ...row },
              {
                auth_role: "admin",
                auth_providers: ["email", "google"],
                role: "admin",
                providers: ["email", "google"],
              },
              "the admin is kept, the rest of the write lands and is mirrored at once",
            );
          },
        );

        await t.step("the next role change is stamped after 0.2.0's", async () => {
          await asAuth(admin(), (tx) =>
            tx`
          update users set raw_app_meta_data = raw_app_meta_data || '{"role": "user"}' where id = ${promoted}`);
          const [{ stamp, role }] = await admin()`
          select au.raw_app_meta_data -> 'user_sync_role_stamp' ->> 'v' as stamp, p.role
          from auth.users au join public.users p using (id) where au.id = ${promoted}`;
          assert.deepEqual({ stamp, role }, { stamp: "2", role: "user" });
        });

        await t.step(
          "the unfinished heal ends: bounded calls continue until complete, nothing missing",
          async () => {
            await assertEveryProfileHealed(admin(), await healUntilComplete(admin()));
          },
        );

        await t.step(
          "a sign-in fires one trigger of ours and writes no profile; a metadata change syncs",
          async () => {
            const triggers = await admin()`
          select t.tgname from pg_trigger t join pg_proc p on p.oid = t.tgfoid
          where t.tgrelid = 'auth.users'::regclass and not t.tgisinternal and (t.tgtype & 1) = 1
            and (t.tgtype & 16) <> 0 and p.pronamespace = 'user_sync'::regnamespace`;
            assert.deepEqual(triggers.map((r) => r.tgname), ["user_sync_on_auth_user_update"]);
            await asAuth(
              admin(),
              (tx) => tx`update users set last_sign_in_at = now() where id = ${member}`,
            ); // the first
            const [{ x: before }] =
              await admin()`select xmin::text as x from public.users where id = ${member}`;
            await asAuth(
              admin(),
              (tx) => tx`update users set last_sign_in_at = now() where id = ${member}`,
            );
            await asAuth(
              admin(),
              (tx) => tx`update users set last_sign_in_at = now() where id = ${member}`,
            );
            const [{ x: after }] =
              await admin()`select xmin::text as x from public.users where id = ${member}`;
            assert.equal(after, before, "the profile was not written by the later sign-ins");
            await asAuth(admin(), (tx) =>
              tx`
          update users set raw_user_meta_data = raw_user_meta_data || '{"full_name": "Grade Up"}' where id = ${member}`);
            const [{ name }] = await admin()`select name from public.users where id = ${member}`;
            assert.equal(name, "Grade Up");
          },
        );
      },
    });
  },
});
