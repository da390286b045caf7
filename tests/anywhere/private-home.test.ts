// Any folder works: a clone of this commit in a private home (a mode-700 parent, like
// /root or /home/<user>) starts its database, applies the migrations with the Supabase
// CLI and passes a pgTAP file, through the same scripts as `npm start` / `npm test`.
// As root the cluster runs as the `postgres` OS user, who cannot enter that home: its
// data must then live outside the checkout (scripts/db.sh datadir), and nothing else it
// reads or writes (password file, socket, server.log, extension files) may be inside.
//
// Runs on its own port: USER_SYNC_ANYWHERE_DB_PORT (54361). npm test runs it as a step.
import assert from "node:assert/strict";
import { ROOT, cluster, run } from "../_support/cluster.ts";

const PORT = Number(Deno.env.get("USER_SYNC_ANYWHERE_DB_PORT") || "54361");
const isRoot = Deno.uid() === 0;

Deno.test({
  name: `any folder: a clone under a mode-700 parent starts, migrates and passes pgTAP${isRoot ? " (as root)" : ""}`,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const home = await Deno.makeTempDir({ prefix: "user-sync-home-" });
    await Deno.chmod(home, 0o700);
    const clone = `${home}/app`;
    let db: Awaited<ReturnType<typeof cluster>> | undefined;
    try {
      await t.step("git clone of this commit into the private home", async () => {
        const head = (await run("git", ["-C", ROOT, "rev-parse", "HEAD"])).trim();
        await run("git", ["clone", "--quiet", "--no-checkout", ROOT, clone]);
        await run("git", ["-C", clone, "checkout", "--quiet", head]);
        // The npm-installed tools (deno, supabase CLI) of this checkout: `npm ci` would
        // fetch the same pinned versions.
        await Deno.symlink(`${ROOT}node_modules`, `${clone}/node_modules`);
        assert.equal((await Deno.stat(home)).mode! & 0o777, 0o700);
      });

      await t.step(
        isRoot
          ? "the cluster's data lives outside the checkout, where postgres can reach it"
          : "the cluster's data lives in the checkout (.local/), owned by this user",
        async () => {
          db = await cluster("pgdata", PORT, `${clone}/`);
          if (isRoot) {
            assert.ok(!db.pgdata.startsWith(clone), `data dir ${db.pgdata} is outside ${clone}`);
            // The premise: postgres really cannot enter the checkout.
            await assert.rejects(run("runuser", ["-u", "postgres", "--", "test", "-x", clone]));
          } else {
            assert.equal(db.pgdata, `${clone}/.local/pgdata`);
          }
        },
      );

      await t.step("scripts/db.sh start --fresh and push (Supabase CLI) from the clone", async () => {
        await db!.db("start", "--fresh");
        const out = await db!.db("push");
        assert.match(out, /20261128080000_user_sync\.sql/);
      });

      await t.step("pgTAP: supabase/tests/01-schema.test.sql of the clone passes", async () => {
        const out = await run("pg_prove", [
          "--ext", ".sql", "-h", "127.0.0.1", "-p", String(PORT), "-U", "supabase_admin", "-d", "postgres",
          `${clone}/supabase/tests/01-schema.test.sql`,
        ], { env: { PGPASSWORD: "postgres" }, cwd: clone });
        assert.match(out, /^Result: PASS/m, out);
      });

      await t.step("the server log is in the data directory, nothing of the cluster's in the checkout", async () => {
        await Deno.stat(`${db!.pgdata}/server.log`);
        if (isRoot) {
          const local = await Array.fromAsync(Deno.readDir(`${clone}/.local`)).catch(() => []);
          assert.deepEqual(local.map((e) => e.name), [], "the clone's .local holds no cluster files");
        }
      });
    } finally {
      if (db) {
        await db.stop().catch(() => {});
        // The data of a clone outside the checkout: /var/lib/user-sync/<checkout id>/.
        if (!db.pgdata.startsWith(clone)) {
          await Deno.remove(db.pgdata.replace(/\/[^/]+$/, ""), { recursive: true }).catch(() => {});
        }
      }
      await Deno.remove(home, { recursive: true }).catch(() => {});
    }
  },
});
