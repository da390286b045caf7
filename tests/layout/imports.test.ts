// The layout rule: the local platform (platform/) is development tooling that scripts/,
// bench/ and tests/ build on; those three never import from one another, and nothing
// deployed (supabase/functions) imports any of them.
import assert from "node:assert/strict";
import { ROOT } from "../_support/cluster.ts";

const TOP = ["scripts", "bench", "tests", "platform", "supabase/functions"];
const MAY_IMPORT: Record<string, string[]> = {
  scripts: ["scripts", "platform", "supabase/functions"],
  bench: ["bench", "platform", "supabase/functions"],
  tests: ["tests", "platform", "supabase/functions"],
  platform: ["platform", "supabase/functions"],
  "supabase/functions": ["supabase/functions"],
};

async function* tsFiles(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(`${ROOT}${dir}`)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) yield* tsFiles(path);
    else if (e.name.endsWith(".ts")) yield path;
  }
}

/** The top-level area a path belongs to (longest match). */
function area(path: string): string | undefined {
  return TOP.filter((t) => path === t || path.startsWith(`${t}/`)).sort((a, b) => b.length - a.length)[0];
}

Deno.test("imports: scripts/, bench/ and tests/ build on platform/ and never on each other", async () => {
  const offenders: string[] = [];
  let checked = 0;
  for (const top of TOP) {
    for await (const file of tsFiles(top)) {
      const text = await Deno.readTextFile(`${ROOT}${file}`);
      for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*)["'](\.{1,2}\/[^"']+)["']/g)) {
        checked++;
        const target = new URL(m[1], `file:///${file}`).pathname.slice(1);
        const to = area(target);
        if (to && !MAY_IMPORT[area(file)!].includes(to)) offenders.push(`${file} imports ${target}`);
      }
    }
  }
  assert.ok(checked > 50, `relative imports checked: ${checked}`);
  assert.deepEqual(offenders, []);
});
