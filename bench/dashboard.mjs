// Dashboard load time: the admin view of the dashboard in Debian's Chromium, against the
// system as `npm start` runs it, at growing numbers of users measured side by side in one run.
//   npm run bench:dashboard [-- --sizes 1000,1000000 --reloads 5]
// Users are generated in SQL (bench/sql/setup.sql, the benchmark's provider-shaped mix) and
// their profiles made by one reconcile, then an admin signs in and the page is loaded again
// `--reloads` times. "Full render" = the status cards, the runs table and the first page of
// the users table all on screen, counted from navigation start. Results: bench/DASHBOARD.md.
import { readFileSync, writeFileSync } from "node:fs";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createUser, launchChromium, ROOT, startStack } from "../platform/node-stack.mjs";

const { values: flags } = parseArgs({
  options: {
    sizes: { type: "string", default: "1000,1000000" },
    reloads: { type: "string", default: "5" },
  },
});
const SIZES = flags.sizes.split(",").map(Number);
const RELOADS = Number(flags.reloads);
const log = (msg) => console.error(`[bench:dashboard] ${msg}`);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (n) => n.toLocaleString("en-US");

const stack = await startStack({ refreshMs: "600000", name: "dashboard-bench" });
const dir = mkdtempSync(join(tmpdir(), "user-sync-bench-chromium-"));
const results = [];
try {
  stack.sql(readFileSync(join(ROOT, "bench/sql/setup.sql"), "utf8"));
  const admin = await createUser(stack, { email: "bench.admin@example.test", password: "bench-admin-pw-Aa1!", role: "admin" });
  const { context, page } = await launchChromium(dir);
  const errors = [];
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  // The generated users' avatars point at real providers, unreachable from here.
  const unreachable = (e) => !e.includes("ERR_NAME_NOT_RESOLVED");

  const sinceNavigation = () => page.evaluate(() => Math.round(performance.now() - performance.getEntriesByType("navigation")[0].startTime));
  /** Navigation start → runs and users on screen (lists), then the status cards too (full). */
  const load = async () => {
    await page.reload({ waitUntil: "commit" });
    await page.getByTestId("runs-table").waitFor({ timeout: 120_000 });
    await page.getByTestId("user-row").first().waitFor({ timeout: 120_000 });
    const lists_ms = await sinceNavigation();
    await page.getByTestId("status-cards").waitFor({ timeout: 300_000 });
    const full_ms = await sinceNavigation();
    return await page.evaluate(({ lists_ms, full_ms }) => {
      const api = (match) => performance.getEntriesByType("resource").filter((e) => match(e.name))
        .map((e) => Math.round(e.duration));
      return {
        lists_ms,
        full_ms,
        status_ms: api((url) => url.endsWith("/functions/v1/sync-all")),
        activity_ms: api((url) => url.includes("/functions/v1/sync-all?include=")),
        users_ms: api((url) => url.includes("/rest/v1/users?")),
      };
    }, { lists_ms, full_ms });
  };

  let generated = 0;
  for (const size of SIZES) {
    for (let from = generated + 1; from <= size; from += 250_000) {
      stack.sql(`select bench.gen_users(${from}, ${Math.min(size, from + 250_000 - 1)})`);
    }
    generated = size;
    // Profiles for everyone. The cron job may be running a reconcile already (ours then
    // answers skipped): repeat until one of ours has run, then check nothing is missing.
    for (let tries = 0; ; tries++) {
      const report = JSON.parse(stack.sql("set statement_timeout = 0; select user_sync.reconcile()").split("\n").pop());
      if (!report.skipped) break;
      if (tries > 120) throw new Error("reconcile skipped for 10 minutes");
      await new Promise((r) => setTimeout(r, 5_000));
    }
    stack.sql("vacuum analyze auth.users");
    stack.sql("vacuum analyze public.users");
    const auth = Number(stack.sql("select count(*) from auth.users"));
    const missing = Number(stack.sql("select count(*) from auth.users a where not exists (select from public.users p where p.id = a.id)"));
    if (missing !== 0) throw new Error(`${missing} profiles missing after the reconcile`);
    log(`${fmt(auth)} auth users, every profile there`);
    if (size === SIZES[0]) {
      await page.goto(stack.dashboardUrl);
      await page.getByTestId("sign-in-email").fill(admin.email);
      await page.getByTestId("sign-in-password").fill(admin.password);
      await page.getByTestId("sign-in-submit").click();
      await page.getByTestId("status-cards").waitFor({ timeout: 120_000 });
    }
    const loads = [];
    for (let i = 0; i < RELOADS; i++) loads.push(await load());
    const row = {
      auth_users: auth,
      lists_median_ms: median(loads.map((l) => l.lists_ms)),
      first_ms: loads[0].full_ms,
      median_ms: median(loads.map((l) => l.full_ms)),
      status_median_ms: median(loads.flatMap((l) => l.status_ms)),
      activity_median_ms: median(loads.flatMap((l) => l.activity_ms)),
      users_median_ms: median(loads.flatMap((l) => l.users_ms)),
    };
    log(JSON.stringify(row));
    results.push(row);
  }
  if (errors.some(unreachable)) log(`console errors: ${errors.filter(unreachable).join(" | ")}`);
  await page.screenshot({ path: join(ROOT, ".local/dashboard-test/bench-admin.png"), fullPage: true });
  await context.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
  await stack.stop();
}

const base = results[0];
const lines = [
  "# Dashboard load time",
  "",
  `Command: \`npm run bench:dashboard -- --sizes ${SIZES.join(",")} --reloads ${RELOADS}\` (${new Date().toISOString().slice(0, 10)}, ${
    (await import("node:os")).cpus().length
  } cores shared with other work). Debian Chromium ${"headless"}, the stack of \`npm start\`, an admin signed in;`,
  "time from navigation start until the runs table and the first users page are on screen (*lists*), and until",
  "the status cards are too (*full render*: first load after the data changed, and the median of all loads).",
  "`status()` = sync-all GET (`user_sync.status()`: a scan of both tables, the ids joined only where they differ); `runs+errors` = sync-all GET",
  "`?include=runs,errors,heal&status=false`; `users page` = the first page of `listUsers` (Data API, planner-estimated",
  "total): medians of the requests' own durations.",
  "",
  "| auth users | lists | full render, first | full render, median | status() | runs+errors | users page | full render vs smallest |",
  "|---:|---:|---:|---:|---:|---:|---:|---:|",
  ...results.map((r) =>
    `| ${fmt(r.auth_users)} | ${fmt(r.lists_median_ms)} ms | ${fmt(r.first_ms)} ms | ${fmt(r.median_ms)} ms | ${fmt(r.status_median_ms)} ms | ${fmt(r.activity_median_ms)} ms | ${fmt(r.users_median_ms)} ms | ${(r.median_ms / base.median_ms).toFixed(1)}× |`
  ),
  "",
];
writeFileSync(join(ROOT, "bench/DASHBOARD.md"), lines.join("\n"));
console.log(lines.join("\n"));
