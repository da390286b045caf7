// What `supabase functions deploy` relies on: config.toml declares the three
// functions (verify_jwt = false, one import map), the import map resolves every bare
// specifier the functions import, pinned exactly as deno.json pins them for local
// runs, and each entry point type-checks with that import map alone (no deno.json),
// as the deploy bundler sees it.
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url);
const FUNCTIONS = ["sync-all", "create-user", "auth-webhook"];

function tomlSections(text: string): Map<string, Record<string, string>> {
  const sections = new Map<string, Record<string, string>>();
  let current: Record<string, string> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*$/, "").trim();
    if (!line) continue;
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) {
      current = {};
      sections.set(header[1].trim(), current);
      continue;
    }
    const kv = /^([\w-]+)\s*=\s*(.+)$/.exec(line);
    if (kv && current) current[kv[1]] = kv[2].trim().replace(/^"(.*)"$/, "$1");
  }
  return sections;
}

async function walk(dir: URL): Promise<URL[]> {
  const out: URL[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) out.push(...(await walk(url)));
    else if (entry.name.endsWith(".ts")) out.push(url);
  }
  return out;
}

Deno.test("config.toml: each function authenticates in code and uses the shared import map", async () => {
  const sections = tomlSections(await Deno.readTextFile(new URL("supabase/config.toml", ROOT)));
  for (const fn of FUNCTIONS) {
    const s = sections.get(`functions.${fn}`);
    assert.ok(s, `[functions.${fn}] missing`);
    assert.equal(s.verify_jwt, "false", `${fn}: verify_jwt`);
    assert.equal(s.import_map, "./functions/import_map.json", `${fn}: import_map`);
    // paths in config.toml are relative to supabase/
    const stat = await Deno.stat(new URL(`supabase/${s.import_map.replace(/^\.\//, "")}`, ROOT));
    assert.ok(stat.isFile);
    await Deno.stat(new URL(`supabase/functions/${fn}/index.ts`, ROOT));
  }
  const hookExamples = await Deno.readTextFile(new URL("supabase/config.toml", ROOT));
  assert.match(hookExamples, /# \[auth\.hook\.before_user_created\]/);
  assert.match(hookExamples, /# \[auth\.hook\.custom_access_token\]/);
});

Deno.test("import map: every bare import is mapped, pinned as in deno.json", async () => {
  const importMap = JSON.parse(
    await Deno.readTextFile(new URL("supabase/functions/import_map.json", ROOT)),
  );
  const denoJson = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  const used = new Set<string>();
  for (const file of await walk(new URL("supabase/functions/", ROOT))) {
    const text = await Deno.readTextFile(file);
    for (const m of text.matchAll(/^\s*(?:import|export)\s[^"']*?from\s+["']([^"']+)["']/gm)) {
      const spec = m[1];
      if (/^(\.|\/|npm:|node:|jsr:|https?:)/.test(spec)) continue;
      used.add(spec);
    }
  }
  assert.ok(used.size >= 5, `found bare imports: ${[...used]}`);
  for (const spec of used) {
    const target = importMap.imports[spec];
    assert.ok(target, `${spec} is not in supabase/functions/import_map.json`);
    assert.match(target, /^npm:.+@\d+\.\d+\.\d+$/, `${spec} is pinned to an exact version`);
    assert.equal(target, denoJson.imports[spec], `${spec}: import_map.json and deno.json disagree`);
  }
});

Deno.test("entry points type-check with the functions' import map alone (as deployed)", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "check",
      "--no-config",
      "--no-lock",
      "--import-map",
      new URL("supabase/functions/import_map.json", ROOT).pathname,
      ...FUNCTIONS.map((fn) => new URL(`supabase/functions/${fn}/index.ts`, ROOT).pathname),
    ],
    cwd: "/tmp",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
});

Deno.test("entry points export their handler and do not serve when imported", async () => {
  for (const fn of FUNCTIONS) {
    const mod = await import(new URL(`supabase/functions/${fn}/index.ts`, ROOT).href);
    assert.equal(typeof mod.handler, "function", `${fn} exports handler`);
    assert.equal(typeof mod.handler.close, "function");
    await mod.handler.close();
  }
});
