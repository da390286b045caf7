// The logs of the whole test run, scanned for every configured secret value (run by
// scripts/test.sh as its last step, while the database is still up):
//   - the output of every step (supabase CLI, pg_prove, deno test): the files given;
//   - every log line the tests captured instead of printing (USER_SYNC_TEST_LOG);
//   - the PostgreSQL server log ($USER_SYNC_PGDATA/server.log);
//   - the logs kept in the database: user_sync.errors, user_sync.runs.error,
//     cron.job_run_details, net._http_response.
// Looked for: the JWT secret, the service_role and anon keys, the hook secret (and its
// parts), and anything shaped like a JWT, a whsec_/sb_secret_ key, a password in a
// connection string, or a password the tests made up. Exits non-zero on any hit.
//
//   deno run -A tests/reliability/log-scan.ts <file or directory>...
import { apiKey, LOCAL_HOOK_SECRET, LOCAL_JWT_SECRET } from "../../platform/local.ts";
import { connect } from "../_support/db.ts";

const exact: [string, string][] = [
  ["JWT secret", LOCAL_JWT_SECRET],
  ["service_role key", await apiKey("service_role")],
  ["anon key", await apiKey("anon")],
  ["hook secret", LOCAL_HOOK_SECRET],
  ["hook secret (whsec_)", LOCAL_HOOK_SECRET.replace(/^v1,/, "")],
  ["hook secret (base64)", LOCAL_HOOK_SECRET.replace(/^v1,whsec_/, "")],
];
const shapes: [string, RegExp][] = [
  ["a JWT", /eyJ[\w-]{5,}\.eyJ[\w-]{5,}\.[\w-]{10,}/],
  ["a whsec_ secret", /whsec_[A-Za-z0-9+/]{8,}/],
  ["an sb_secret_ key", /sb_secret_[\w-]{8,}/],
  ["a password in a connection string", /postgres(ql)?:\/\/[^\s:/@]+:(?!\[redacted\])[^\s@/]+@/],
  ["a test password", /\bpw-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-|\be2e-[0-9a-f]{8}-(\d+-)?Aa1!/],
];

const hits: string[] = [];
let lines = 0;
let bytes = 0;
const sources: string[] = [];

function scan(source: string, text: string): void {
  sources.push(source);
  bytes += text.length;
  text.split("\n").forEach((line, i) => {
    lines++;
    for (const [what, value] of exact) {
      if (line.includes(value)) hits.push(`${source}:${i + 1}: ${what}`);
    }
    for (const [what, re] of shapes) {
      // the report shows where, never the value itself
      if (re.test(line)) {
        const shown = line.replace(new RegExp(re.source, "g"), `[${what}]`);
        hits.push(`${source}:${i + 1}: ${what}: ${shown.slice(0, 160)}`);
      }
    }
  });
}

async function scanPath(path: string): Promise<void> {
  const info = await Deno.stat(path).catch(() => null);
  if (!info) return;
  if (info.isDirectory) {
    for await (const e of Deno.readDir(path)) await scanPath(`${path}/${e.name}`);
  } else {
    scan(path, new TextDecoder().decode(await Deno.readFile(path)));
  }
}

for (const arg of Deno.args) await scanPath(arg);
const captured = Deno.env.get("USER_SYNC_TEST_LOG");
if (captured) await scanPath(captured);
const pgdata = Deno.env.get("USER_SYNC_PGDATA");
if (pgdata) await scanPath(`${pgdata}/server.log`);

// Logs kept in the database.
const sql = connect("supabase_admin", { max: 1 });
let dbRows = 0;
try {
  const tables: [string, string][] = [
    ["user_sync.errors", "select concat_ws(' ', message, detail) as t from user_sync.errors"],
    ["user_sync.runs", "select error as t from user_sync.runs where error is not null"],
    [
      "cron.job_run_details",
      "select concat_ws(' ', command, return_message) as t from cron.job_run_details",
    ],
    [
      "net._http_response",
      "select concat_ws(' ', content, error_msg) as t from net._http_response",
    ],
  ];
  for (const [name, query] of tables) {
    const rows = await sql.unsafe(query).catch(() => [] as { t: string }[]);
    dbRows += rows.length;
    scan(`db:${name}`, rows.map((r) => r.t ?? "").join("\n"));
  }
} finally {
  await sql.end();
}

const summary = {
  figures: "secrets in the logs of the whole run",
  sources: sources.length,
  lines,
  bytes,
  db_log_rows: dbRows,
  secret_values: exact.length,
  secret_shapes: shapes.length,
  captured_log: Boolean(captured),
  hits: hits.length,
};
console.log(JSON.stringify(summary));
if (!captured || sources.length < 3) {
  console.error("log-scan: nothing much to scan (run it from scripts/test.sh)");
  Deno.exit(1);
}
if (hits.length > 0) {
  console.error(`log-scan: ${hits.length} secret(s) in the logs:\n${hits.slice(0, 50).join("\n")}`);
  Deno.exit(1);
}
