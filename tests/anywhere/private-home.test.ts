// Any folder works: a clone of this commit in a private home (a mode-700 parent, like
// /root or /home/<user>) starts its database, applies the migrations with the Supabase
// CLI and passes a pgTAP file, through the same scripts as `npm start` / `npm test`.
//   - as root: the cluster runs as the `postgres` OS user, who cannot enter that home, so
//     its data must live outside the checkout (scripts/db.sh datadir), and nothing else
//     it reads or writes (password file, socket, server.log) may be inside;
//   - as a normal user (this user, or `nobody` when run as root), with the Debian
//     packages installed: the cluster runs as that user, data in the clone's .local/.
//
// Runs on its own port: USER_SYNC_ANYWHERE_DB_PORT (54361). npm test runs it as a step.
import assert from "node:assert/strict";
import { type Cluster, cluster, ROOT, run } from "../_support/cluster.ts";

const PORT = Number(Deno.env.get("USER_SYNC_ANYWHERE_DB_PORT") || "54361");
const isRoot = Deno.uid() === 0;

/** Clones this commit into a new private home; as `osUser` (root only) it is theirs. */
async function privateClone(osUser?: string): Promise<{ home: string; clone: string }> {
  const home = await Deno.makeTempDir({ prefix: "user-sync-home-" });
  const clone = `${home}/app`;
  const head = (await run("git", ["-C", ROOT, "rev-parse", "HEAD"])).trim();
  await run("git", ["clone", "--quiet", "--no-checkout", ROOT, clone]);
  await run("git", ["-C", clone, "checkout", "--quiet", head]);
  if (osUser) await run("chown", ["-R", osUser, home]);
  await Deno.chmod(home, 0o700);
  // The npm-installed tools (deno, supabase CLI): `npm ci` would fetch the same pinned
  // versions. Linked where the user can reach this checkout's copy, else copied.
  const reachable = !osUser ||
    await run("runuser", ["-u", osUser, "--", "test", "-r", `${ROOT}node_modules/.bin/supabase`])
      .then(() => true, () => false);
  if (reachable) await Deno.symlink(`${ROOT}node_modules`, `${clone}/node_modules`);
  else {
    await run("cp", ["-a", `${ROOT}node_modules`, `${clone}/node_modules`]);
    await run("chown", ["-R", osUser!, `${clone}/node_modules`]);
  }
  return { home, clone };
}

/** start --fresh, push and one pgTAP file in the clone; then stops and removes it. */
async function startMigrateProve(t: Deno.TestContext, osUser?: string): Promise<void> {
  const { home, clone } = await privateClone(osUser);
  const asPostgres = isRoot && !osUser;
  let db: Cluster | undefined;
  try {
    assert.equal((await Deno.stat(home)).mode! & 0o777, 0o700, "the clone's parent is private");
    await t.step(
      asPostgres
        ? "the cluster's data lives outside the checkout, where postgres can reach it"
        : "the cluster's data lives in the clone's .local/",
      async () => {
        db = await cluster("pgdata", PORT, `${clone}/`, { osUser, home });
        if (asPostgres) {
          assert.ok(!db.pgdata.startsWith(clone), `data dir ${db.pgdata} is outside ${clone}`);
          // The premise: postgres really cannot enter the checkout.
          await assert.rejects(run("runuser", ["-u", "postgres", "--", "test", "-x", clone]));
        } else {
          assert.equal(db.pgdata, `${clone}/.local/pgdata`);
        }
      },
    );
    await t.step("scripts/db.sh start --fresh, then push (Supabase CLI), from the clone", async () => {
      await db!.db("start", "--fresh");
      assert.match(await db!.db("push"), /20261128080000_user_sync\.sql/);
      const owner = (await run("stat", ["-c", "%U", `${db!.pgdata}/PG_VERSION`])).trim();
      assert.equal(owner, osUser ?? (isRoot ? "postgres" : Deno.env.get("USER") ?? owner));
    });
    await t.step("pgTAP: the clone's supabase/tests/01-schema.test.sql passes", async () => {
      const out = await run("pg_prove", [
        "--ext", ".sql", "-h", "127.0.0.1", "-p", String(PORT), "-U", "supabase_admin", "-d", "postgres",
        `${clone}/supabase/tests/01-schema.test.sql`,
      ], { env: { PGPASSWORD: "postgres" } });
      assert.match(out, /^Result: PASS/m, out);
    });
    await t.step("the server log is in the data directory; the checkout holds no cluster file", async () => {
      await Deno.stat(`${db!.pgdata}/server.log`);
      if (asPostgres) {
        const local = await Array.fromAsync(Deno.readDir(`${clone}/.local`)).catch(() => []);
        assert.deepEqual(local.map((e) => e.name), [], "the clone's .local holds nothing of the cluster");
      }
    });
  } finally {
    if (db) {
      await db.stop().catch(() => {});
      // The data of a clone kept outside the checkout: /var/lib/user-sync/<checkout id>/.
      if (!db.pgdata.startsWith(clone)) {
        await Deno.remove(db.pgdata.replace(/\/[^/]+$/, ""), { recursive: true }).catch(() => {});
      }
    }
    await Deno.remove(home, { recursive: true }).catch(() => {});
  }
}

Deno.test({
  name: `any folder: a clone under a mode-700 parent starts, migrates and passes pgTAP`,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await t.step(isRoot ? "as root (the cluster runs as postgres)" : "as this (normal) user", (t) => startMigrateProve(t));
    if (isRoot) {
      await t.step("as a normal user (nobody), with the Debian packages installed", (t) => startMigrateProve(t, "nobody"));
    }
  },
});
