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
import { chromium } from "playwright-core";
import { createUser, ROOT, startStack } from "../tests/dashboard/stack.mjs";

const { values: flags } = parseArgs({
  options: {
    sizes: { type: "string", default: "1000,1000000" },
    reloads: { type: "string", default: "5" },
  },
});
const SIZES = flags.sizes.split(",").map(Number);
const RELOADS = Number(flags.reloads);
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const log = (msg) => console.error(`[bench:dashboard] ${msg}`);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (n) => n.toLocaleString("en-US");

const stack = await startStack({ refreshMs: "600000", name: "dashboard-bench" });
const dir = mkdtempSync(join(tmpdir(), "user-sync-bench-chromium-"));
const results = [];
try {
  stack.sql(readFileSync(join(ROOT, "bench/sql/setup.sql"), "utf8"));
  const admin = await createUser(stack, { email: "bench.admin@example.test", password: "bench-admin-pw-Aa1!", role: "admin" });
  const context = await chromium.launchPersistentContext(dir, { executablePath: "/usr/bin/chromium", headless: true, args: FLAGS, viewport: { width: 1280, height: 900 } });
  const page = context.pages()[0] ?? (await context.newPage());
  const errors = [];
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));

  /** Navigation start → cards, runs and users on screen; plus the API calls' own times. */
  const load = async () => {
    await page.reload({ waitUntil: "commit" });
    await page.getByTestId("status-cards").waitFor({ timeout: 120_000 });
    await page.getByTestId("runs-table").waitFor({ timeout: 120_000 });
    await page.getByTestId("user-row").first().waitFor({ timeout: 120_000 });
    return await page.evaluate(() => {
      const nav = performance.getEntriesByType("navigation")[0];
      const api = (part) => performance.getEntriesByType("resource").filter((e) => e.name.includes(part))
        .map((e) => Math.round(e.duration));
      return { full_ms: Math.round(performance.now() - nav.startTime), status_ms: api("sync-all"), users_ms: api("/rest/v1/users?") };
    });
  };

  let generated = 0;
  for (const size of SIZES) {
    for (let from = generated + 1; from <= size; from += 250_000) {
      stack.sql(`select bench.gen_users(${from}, ${Math.min(size, from + 250_000 - 1)})`);
    }
    generated = size;
    stack.sql("set statement_timeout = 0; select user_sync.reconcile()");
    stack.sql("vacuum analyze auth.users");
    stack.sql("vacuum analyze public.users");
    const auth = Number(stack.sql("select count(*) from auth.users"));
    log(`${fmt(auth)} auth users, in sync`);
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
      first_ms: loads[0].full_ms,
      median_ms: median(loads.map((l) => l.full_ms)),
      status_median_ms: median(loads.flatMap((l) => l.status_ms)),
      users_median_ms: median(loads.flatMap((l) => l.users_ms)),
    };
    log(JSON.stringify(row));
    results.push(row);
  }
  if (errors.length) log(`console errors: ${errors.join(" | ")}`);
  await page.screenshot({ path: join(ROOT, ".local/dashboard-test/bench-admin.png") });
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
  "time from navigation start until the status cards, the runs table and the first users page are on screen",
  "(first load after the data changed, and the median of all loads). `status()` = sync-all GET with runs and errors;",
  "`users` = the first page of `listUsers` (Data API, planner-estimated total). Medians of the requests' own durations.",
  "",
  "| auth users | first load | median load | status() | users page | median vs smallest |",
  "|---:|---:|---:|---:|---:|---:|",
  ...results.map((r) =>
    `| ${fmt(r.auth_users)} | ${fmt(r.first_ms)} ms | ${fmt(r.median_ms)} ms | ${fmt(r.status_median_ms)} ms | ${fmt(r.users_median_ms)} ms | ${(r.median_ms / base.median_ms).toFixed(1)}× |`
  ),
  "",
];
writeFileSync(join(ROOT, "bench/DASHBOARD.md"), lines.join("\n"));
console.log(lines.join("\n"));
