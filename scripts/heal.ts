// The heal command: brings public.users in line with auth.users on any database,
// in bounded reconcile calls (the same ones sync-all makes), with a progress bar on a
// terminal and one JSON line per call otherwise. Ctrl-C stops between calls; run it
// again to continue where it stopped (the progress lives in the database).
//   npm run heal -- --db-url postgresql://postgres:...@db.<ref>.supabase.co:5432/postgres
//   npx deno task heal --db-url ...   [--call-ms 1000] [--budget-s 0] [--dry-run]
import postgres from "postgres";
import { parseArgs } from "node:util";
import {
  driveHeal,
  type HealProgress,
  type ReconcileReport,
} from "../supabase/functions/_shared/heal.ts";

const USAGE = `usage: npm run heal -- --db-url URL [--call-ms MS] [--budget-s S] [--dry-run]
  --db-url URL    Postgres URL of the project (direct or session pooler); or env USER_SYNC_HEAL_DB_URL
  --call-ms MS    budget of each reconcile call, 100 to 2000 (default 1000): no lock of
                  ours is held longer than about this plus one batch
  --budget-s S    stop after S seconds (default 0: until the heal is complete)
  --dry-run       report what a heal would change, change nothing`;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "db-url": { type: "string" },
    "call-ms": { type: "string", default: "1000" },
    "budget-s": { type: "string", default: "0" },
    "dry-run": { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  console.log(USAGE);
  Deno.exit(0);
}
const dbUrl = values["db-url"] ?? Deno.env.get("USER_SYNC_HEAL_DB_URL");
const callMs = Number(values["call-ms"]);
const budgetS = Number(values["budget-s"]);
if (
  !dbUrl || !/^postgres(ql)?:\/\//.test(dbUrl) || !Number.isInteger(callMs) || callMs < 100 ||
  callMs > 2000 || !Number.isFinite(budgetS) || budgetS < 0
) {
  console.error(USAGE);
  Deno.exit(2);
}
const dryRun = values["dry-run"];

const sql = postgres(dbUrl, {
  max: 1,
  prepare: false,
  onnotice: () => {},
  connection: { application_name: "user-sync:heal" },
});

const tty = Deno.stderr.isTerminal();
const enc = new TextEncoder();
let stop = false;
const onSigint = () => {
  if (stop) Deno.exit(130); // a second Ctrl-C: leave now (the open call rolls back)
  stop = true;
  if (tty) {
    Deno.stderr.writeSync(enc.encode("\nstopping after this call (Ctrl-C again to leave now)\n"));
  }
};
Deno.addSignalListener("SIGINT", onSigint);

const fmtN = (n: number | null) => (n == null ? "?" : n.toLocaleString("en-US"));
const fmtEta = (s: number | null) =>
  s == null
    ? "?"
    : s >= 3600
    ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`
    : s >= 60
    ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`
    : `${s}s`;

function bar(p: HealProgress): string {
  const frac = p.total && p.examined != null ? Math.min(1, p.examined / p.total) : 0;
  const width = 30;
  const full = Math.round(frac * width);
  return `\r[${"#".repeat(full)}${"-".repeat(width - full)}] ${
    (frac * 100).toFixed(1).padStart(5)
  }% ` +
    `${fmtN(p.examined)}/${fmtN(p.total)} users  ${fmtN(p.rate)}/s  ETA ${
      fmtEta(p.eta_seconds)
    }  ` +
    `calls ${p.calls}\x1b[K`;
}

let exitCode = 0;
try {
  const report = await driveHeal({
    budgetMs: budgetS > 0 ? budgetS * 1000 : Infinity,
    callMs,
    stopRequested: () => stop,
    call: async (maxMs) => {
      // One statement, one transaction: nothing is held between calls.
      const [{ r }] =
        await sql`select user_sync.reconcile(${dryRun}, 'heal', ${maxMs}::integer) as r`;
      return r as ReconcileReport;
    },
    onProgress: (p) => {
      if (tty) Deno.stderr.writeSync(enc.encode(bar(p)));
      else {
        console.log(JSON.stringify({
          event: "heal progress",
          calls: p.calls,
          examined: p.examined,
          total: p.total,
          remaining: p.remaining,
          rate: p.rate,
          eta_seconds: p.eta_seconds,
          inserted: p.last.inserted,
          updated: p.last.updated,
          deleted: p.last.deleted,
          errors: p.last.errors,
          call_ms: p.last.duration_ms,
        }));
      }
    },
  });
  if (tty) Deno.stderr.writeSync(enc.encode("\n"));
  const summary = {
    event: report.skipped ? "heal skipped" : report.complete ? "heal complete" : "heal stopped",
    ...report,
  };
  if (tty) {
    console.error(
      report.skipped
        ? "another reconcile is running (the cron job?); it continues the same heal: try again later"
        : report.complete
        ? `heal complete: ${fmtN(report.inserted ?? 0)} inserted, ${
          fmtN(report.updated ?? 0)
        } updated, ` +
          `${fmtN(report.deleted ?? 0)} deleted, ${
            fmtN(report.errors ?? 0)
          } failed (see user_sync.errors)`
        : `heal stopped at ${fmtN(report.progress.examined)}/${
          fmtN(report.progress.total)
        }: run the same command to continue`,
    );
  }
  console.log(JSON.stringify(summary));
  if (report.status === "failed") exitCode = 1;
  else if (!report.complete) exitCode = report.skipped ? 75 : 3;
} catch (err) {
  const e = err as { code?: string; message?: string };
  console.error(
    JSON.stringify({
      event: "heal failed",
      sqlstate: e.code ?? null,
      message: e.message ?? String(err),
    }),
  );
  exitCode = 1;
} finally {
  Deno.removeSignalListener("SIGINT", onSigint);
  await sql.end({ timeout: 5 });
}
Deno.exit(exitCode);
