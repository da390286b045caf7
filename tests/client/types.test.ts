// client/src/database.types.ts is what the real generator (@supabase/postgres-meta, the
// code behind `supabase gen types typescript`) prints for the migrated database. After a
// schema change: `bash scripts/gen-types.sh` (with the database up and migrated).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

Deno.test("client/src/database.types.ts is what the generator prints for the migrated database", async () => {
  const root = new URL("../../", import.meta.url).pathname;
  const out = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    const gen = await new Deno.Command("bash", {
      args: [`${root}scripts/gen-types.sh`, out],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(gen.code, 0, new TextDecoder().decode(gen.stderr));
    const fresh = readFileSync(out, "utf8");
    const committed = readFileSync(`${root}client/src/database.types.ts`, "utf8");
    assert.ok(fresh.includes("users: {"), "the generator saw public.users");
    assert.equal(
      committed,
      fresh,
      "client/src/database.types.ts is stale: run `bash scripts/gen-types.sh` and commit it",
    );
  } finally {
    await Deno.remove(out);
  }
});
