// The admin dashboard in a real browser: Debian's Chromium (/usr/bin/chromium) driven by
// playwright-core, against the system as `npm start` runs it (platform/node-stack.mjs).
// Run by scripts/test-dashboard.sh (in npm test): node --test tests/dashboard/browser.mjs
// Screenshots for review: .local/dashboard-test/*.png
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { claims, createUser, launchChromium, OUT_DIR, signIn, startStack } from "../../platform/node-stack.mjs";

let stack;
const browsers = [];
const run = Date.now().toString(36);
const pw = (who) => `pw-${who}-${run}-Aa1!`;
const people = {
  admin: { email: `admin.${run}@example.test`, password: pw("admin"), role: "admin", name: "Ada Admin" },
  user: { email: `ursula.${run}@example.test`, password: pw("user"), name: "Ursula User" },
  casey: { email: `casey.${run}@example.test`, password: pw("casey"), name: "Casey Candidate" },
  ghost: { email: `gus.ghost.${run}@example.test`, password: pw("ghost"), name: "Gus Ghost" },
};

/**
 * A browser of its own (fresh --user-data-dir) and one page, recording console errors,
 * page errors and every response (URL, status, body) for the assertions.
 */
async function openBrowser(viewport = { width: 1280, height: 900 }) {
  const dir = mkdtempSync(join(tmpdir(), "user-sync-chromium-"));
  const { context, page } = await launchChromium(dir, viewport);
  browsers.push({ context, dir });
  const seen = { consoleErrors: [], responses: [] };
  page.on("console", (msg) => {
    if (msg.type() === "error") seen.consoleErrors.push(msg.text());
  });
  page.on("pageerror", (err) => seen.consoleErrors.push(`pageerror: ${err.message}`));
  page.on("response", async (res) => {
    const entry = { url: res.url(), status: res.status(), method: res.request().method(), body: "" };
    seen.responses.push(entry);
    try {
      entry.body = await res.text();
    } catch {
      // redirects and preflights have no body
    }
  });
  return { page, seen };
}

async function signInAs(page, who) {
  await page.goto(stack.dashboardUrl);
  await page.getByTestId("sign-in-email").fill(who.email);
  await page.getByTestId("sign-in-password").fill(who.password);
  await page.getByTestId("sign-in-submit").click();
}

const cardValue = async (page, id) => Number((await page.getByTestId(`card-${id}-value`).innerText()).replace(/[^0-9]/g, ""));

/** Waits until the card shows `value` (the page refreshes on its own). */
async function expectCard(page, id, value) {
  await page.getByTestId(`card-${id}-value`).filter({ hasText: new RegExp(`^${value.toLocaleString("en-US")}$`) })
    .waitFor({ timeout: 15_000 });
}

before(async () => {
  stack = await startStack();
  for (const [key, who] of Object.entries(people)) Object.assign(people[key], await createUser(stack, who));
  await stack.call("sync-all", { method: "POST", body: "{}" });
});

after(async () => {
  for (const { context, dir } of browsers) {
    await context.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
  await stack?.stop();
});

describe("admin", { concurrency: false }, () => {
  let page;
  let seen;

  test("signs in and sees the counts of status()", async () => {
    ({ page, seen } = await openBrowser());
    await page.goto(stack.dashboardUrl);
    await page.getByTestId("sign-in").waitFor();
    await page.screenshot({ path: join(OUT_DIR, "sign-in.png") });
    await signInAs(page, people.admin);
    await page.getByTestId("status-cards").waitFor({ timeout: 20_000 });
    await page.getByTestId("runs-table").waitFor();
    const status = await stack.call("sync-all");
    for (const [card, key] of [["auth-users", "auth_users"], ["profiles", "profiles"], ["missing", "missing"], ["drifted", "drifted"], ["orphaned", "orphaned"], ["open-errors", "open_errors"]]) {
      assert.equal(await cardValue(page, card), status[key], `card ${card} = status().${key}`);
    }
    for (const problem of status.health.problems) {
      const item = page.getByTestId(`problem-${problem.code}`);
      assert.ok(await item.innerText().then((t) => t.includes(problem.hint)), `health problem ${problem.code} with its hint`);
    }
    assert.equal(await page.getByTestId("admin-badge").innerText(), "admin");
    await page.getByTestId("users-table").waitFor();
    await page.screenshot({ path: join(OUT_DIR, "admin.png"), fullPage: true });
  });

  test("Sync now shows the new run", async () => {
    const before = await stack.call("sync-all?include=runs");
    const lastId = before.runs[0]?.run_id ?? 0;
    await page.getByTestId("sync-now").click();
    await page.getByTestId("sync-report").waitFor({ timeout: 30_000 });
    const after = await stack.call("sync-all?include=runs");
    const run = after.runs[0];
    assert.ok(run.run_id > lastId, "a new run was recorded");
    assert.equal(run.source, "admin");
    const row = page.locator(`[data-testid=run-row][data-run-id="${run.run_id}"]`);
    await row.waitFor({ timeout: 10_000 });
    assert.match(await row.innerText(), /admin/);
    assert.match(await page.getByTestId("sync-report").innerText(), new RegExp(`#${run.run_id}`));
  });

  test("a profile deleted behind the system's back shows as missing; Sync now heals it", async () => {
    await expectCard(page, "missing", 0);
    stack.sql(`delete from public.users where id = '${people.ghost.id}'`);
    // No reload: the page refreshes on its own while it is visible.
    await expectCard(page, "missing", 1);
    await page.screenshot({ path: join(OUT_DIR, "admin-missing.png") });
    await page.getByTestId("sync-now").click();
    await page.getByTestId("sync-report").filter({ hasText: "inserted 1" }).waitFor({ timeout: 30_000 });
    await expectCard(page, "missing", 0);
    assert.equal(stack.sql(`select count(*) from public.users where id = '${people.ghost.id}'`), "1");
  });

  test("auto-refresh stops while the tab is hidden and resumes when it shows", async () => {
    const statusCalls = () => seen.responses.filter((r) => r.method === "GET" && r.url.includes("/functions/v1/sync-all")).length;
    const setVisibility = (state) =>
      page.evaluate((s) => {
        Object.defineProperty(document, "visibilityState", { configurable: true, get: () => s });
        document.dispatchEvent(new Event("visibilitychange"));
      }, state);
    await setVisibility("hidden");
    await page.getByTestId("refresh-state").filter({ hasText: "paused" }).waitFor();
    const hiddenAt = statusCalls();
    await page.waitForTimeout(4_000); // more than two refresh intervals (1.5 s in this test)
    assert.equal(statusCalls(), hiddenAt, "no status request while hidden");
    await setVisibility("visible");
    await page.waitForTimeout(2_000);
    assert.ok(statusCalls() > hiddenAt, "refreshes again once visible");
  });

  test("searches a user and changes the role; the user's next token carries it", async () => {
    const before = claims(await signIn(stack, people.casey));
    assert.equal(before.user_role, "user");
    await page.getByTestId("users-search").fill("casey candidate");
    await page.getByTestId("users-total").filter({ hasText: "(1)" }).waitFor();
    const row = page.locator(`[data-testid=user-row][data-user-id="${people.casey.id}"]`);
    assert.equal(await page.getByTestId("user-row").count(), 1, "the search finds only Casey");
    assert.equal(await row.count(), 1);
    await row.getByTestId("user-role").selectOption("admin");
    await page.getByTestId("users-notice").filter({ hasText: "is now admin" }).waitFor();
    const token = claims(await signIn(stack, people.casey));
    assert.equal(token.user_role, "admin", "user_role claim");
    assert.equal(token.app_metadata.role, "admin", "app_metadata.role");
    await page.screenshot({ path: join(OUT_DIR, "admin-role-changed.png") });
  });

  test("the users table filters by role and pages", async () => {
    await page.getByTestId("users-search").fill("");
    await page.getByTestId("users-role").selectOption("admin");
    await page.getByTestId("users-total").filter({ hasText: "(2)" }).waitFor();
    const roles = await page.getByTestId("user-role").evaluateAll((els) => els.map((e) => e.value));
    assert.deepEqual(roles, ["admin", "admin"], "Ada and Casey are the admins");
    await page.getByTestId("users-role").selectOption("");
    await page.getByTestId("users-provider").selectOption("google");
    await page.getByTestId("users-empty").waitFor();
    await page.getByTestId("users-provider").selectOption("");
    assert.match(await page.getByTestId("users-page").innerText(), /^Page 1 of 1$/);
  });

  test("narrow screens: one column, nothing wider than the screen", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - globalThis.innerWidth);
    assert.ok(overflow <= 0, `page is ${overflow}px wider than a 390px screen`);
    await page.screenshot({ path: join(OUT_DIR, "admin-narrow.png"), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  test("signing out unmounts the admin view, and its refreshing stops", async () => {
    const statusCalls = () => seen.responses.filter((r) => r.method === "GET" && r.url.includes("/functions/v1/sync-all")).length;
    seen.signOut = { console: seen.consoleErrors.length, responses: seen.responses.length };
    await page.getByTestId("sign-out").click();
    await page.getByTestId("sign-in").waitFor();
    assert.equal(await page.getByTestId("admin-view").count(), 0);
    const at = statusCalls();
    await page.waitForTimeout(4_000);
    assert.equal(statusCalls(), at, "no status request after unmount");
  });

  test("no console errors in the admin's browser", () => {
    const at = seen.signOut ?? { console: seen.consoleErrors.length, responses: seen.responses.length };
    assert.deepEqual(seen.consoleErrors.slice(0, at.console), [], "no console error while signed in");
    // A request in flight when the session ends may be refused (401) and logged by the
    // browser as a failed resource load; nothing else may appear after signing out.
    const after = seen.consoleErrors.slice(at.console);
    const refused = seen.responses.slice(at.responses).filter((r) => r.status === 401).length;
    assert.ok(
      after.every((e) => /status of 401/.test(e)) && after.length <= refused,
      `after signing out only refused (401) requests: ${JSON.stringify(after)}`,
    );
  });
});

describe("a normal user", { concurrency: false }, () => {
  let page;
  let seen;

  test("sees only their own profile and edits the name and avatar", async () => {
    ({ page, seen } = await openBrowser());
    await signInAs(page, people.user);
    await page.getByTestId("profile-view").waitFor({ timeout: 20_000 });
    assert.equal(await page.getByTestId("admin-view").count(), 0, "no admin view");
    assert.equal(await page.getByTestId("profile-email").innerText(), people.user.email);
    assert.equal(await page.getByTestId("profile-name").innerText(), people.user.name);
    const avatar = `${stack.dashboardUrl}/favicon.svg`;
    await page.getByTestId("profile-name-input").fill("Ursula Renamed");
    await page.getByTestId("profile-avatar-input").fill(avatar);
    await page.getByTestId("profile-save").click();
    await page.getByTestId("profile-message").filter({ hasText: "Saved" }).waitFor();
    await page.getByTestId("profile-name").filter({ hasText: "Ursula Renamed" }).waitFor();
    assert.equal(await page.getByTestId("profile-avatar").getAttribute("src"), avatar);
    assert.equal(
      stack.sql(`select name || ' ' || avatar_url || ' ' || (name_edited_at is not null) from public.users where id = '${people.user.id}'`),
      `Ursula Renamed ${avatar} true`,
    );
    await page.screenshot({ path: join(OUT_DIR, "user.png"), fullPage: true });
  });

  test("admin-only data never reaches that browser", () => {
    const others = [people.admin, people.casey, people.ghost].flatMap((p) => [p.email, p.id]);
    assert.ok(seen.responses.length > 0);
    const api = seen.responses.filter((r) => r.url.startsWith(stack.apiUrl));
    assert.ok(api.length > 0);
    for (const r of api) {
      assert.ok(!r.url.includes("/functions/v1/sync-all") || r.method === "POST", `no status request: ${r.url}`);
      for (const secret of others) assert.ok(!r.body.includes(secret), `${r.url} carries another user's data`);
      assert.doesNotMatch(r.body, /"auth_users"|"open_errors"|"runs"/, `${r.url} carries admin data`);
    }
    const profileReads = seen.responses.filter((r) => r.url.includes("/rest/v1/users") && r.status === 200);
    assert.ok(profileReads.length > 0, "the profile came through the Data API");
    for (const r of profileReads) {
      const rows = [JSON.parse(r.body)].flat();
      assert.deepEqual([...new Set(rows.map((u) => u.id))], [people.user.id], `${r.url} answers only their row`);
    }
  });

  test("no console errors in the user's browser", () => {
    assert.deepEqual(seen.consoleErrors, []);
  });
});

describe("clear states", { concurrency: false }, () => {
  test("functions unreachable: the admin sees an error, not a blank page", async () => {
    const { page } = await openBrowser();
    await page.route("**/functions/v1/sync-all**", (route) => route.abort("connectionrefused"));
    await signInAs(page, people.admin);
    const alert = page.getByTestId("status-error");
    await alert.waitFor({ timeout: 20_000 });
    assert.match(await alert.innerText(), /Could not reach the sync-all function/);
    await page.screenshot({ path: join(OUT_DIR, "admin-unreachable.png") });
  });

  test("a long heal shows a progress bar until complete, without counting every user meanwhile", async () => {
    // The functions' answers for a heal that needs two calls: the first POST answers
    // complete: false after a while, and the cheap GET (?include=...heal&status=false)
    // carries `heal` meanwhile; the second POST is the real one. status()'s counts (a
    // pass over every user: seconds at 1M) are not asked for while the heal runs.
    const { page } = await openBrowser();
    let posts = 0;
    let healing = false;
    let countsWhileHealing = 0;
    let progressPolls = 0;
    const cors = { "access-control-allow-origin": "*", "content-type": "application/json" };
    await page.route("**/functions/v1/sync-all**", async (route) => {
      const req = route.request();
      if (req.method() === "GET") {
        const url = new URL(req.url());
        const cheap = url.searchParams.get("status") === "false";
        if (healing && !cheap) countsWhileHealing += 1;
        const res = await route.fetch();
        const body = await res.json();
        if (healing && cheap && (url.searchParams.get("include") ?? "").split(",").includes("heal")) {
          progressPolls += 1;
          body.heal = { examined: 250_000, total: 1_000_000, rate: 50_000, eta_seconds: 15, started_at: new Date().toISOString() };
        }
        return await route.fulfill({ response: res, json: body });
      }
      if (req.method() !== "POST") return await route.continue();
      posts += 1;
      if (posts > 1) return await route.continue();
      healing = true;
      await new Promise((r) => setTimeout(r, 3_000));
      healing = false;
      await route.fulfill({
        status: 200,
        headers: cors,
        body: JSON.stringify({ run_id: 0, status: "ok", dry_run: false, complete: false, remaining: 750_000, calls: 1, inserted: 0, updated: 0, deleted: 0, errors: 0 }),
      });
    });
    await signInAs(page, people.admin);
    await page.getByTestId("status-cards").waitFor({ timeout: 20_000 });
    await page.getByTestId("sync-now").click();
    const progress = page.getByTestId("sync-progress");
    await progress.filter({ hasText: "250,000 of 1,000,000 examined (25%)" }).waitFor({ timeout: 10_000 });
    assert.equal(await progress.getByRole("progressbar").getAttribute("aria-valuenow"), "25");
    assert.match(await progress.innerText(), /50,000\/s · about 15 s left/);
    await page.screenshot({ path: join(OUT_DIR, "admin-heal-progress.png") });
    assert.equal(await page.getByTestId("sync-now").isDisabled(), true, "one sync at a time");
    await page.getByTestId("sync-report").waitFor({ timeout: 20_000 });
    assert.equal(posts, 2, "called sync-all again until it answered complete");
    assert.equal(await progress.count(), 0, "the bar is gone once complete");
    assert.ok(progressPolls >= 2, `the progress was asked for every second (${progressPolls} times in 3 s)`);
    assert.equal(countsWhileHealing, 0, "status()'s counts were not asked for while the heal ran");
  });

  test("a wrong password is said so", async () => {
    const { page } = await openBrowser();
    await signInAs(page, { ...people.user, password: "wrong-password" });
    await page.getByTestId("sign-in-error").waitFor();
  });
});
