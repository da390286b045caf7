// The loop sync-all and the heal command share (supabase/functions/_shared/heal.ts),
// with a fake reconcile and a fake clock: it stops when the pass is complete, when the
// next call could not end inside the budget, when another runner holds the pass, and
// on a stop request; it sums the calls' reports. The sync-all budget settings are
// validated.
import assert from "node:assert/strict";
import {
  CALL_OVERRUN_MS,
  driveHeal,
  type ReconcileReport,
} from "../../supabase/functions/_shared/heal.ts";
import { ConfigError, loadConfig } from "../../supabase/functions/_shared/config.ts";

/** A pass of `total` users examined `perCall` per call; each call takes its budget. */
function fakePass(total: number, perCall: number) {
  let clock = 0;
  let examined = 0;
  const budgets: number[] = [];
  const call = (maxMs: number): Promise<ReconcileReport> => {
    budgets.push(maxMs);
    clock += maxMs + 100; // a call overruns its budget by one small batch
    const n = Math.min(perCall, total - examined);
    examined += n;
    const complete = examined === total;
    return Promise.resolve({
      run_id: budgets.length,
      source: "cron",
      dry_run: false,
      skipped: false,
      status: "ok",
      auth_users: complete ? total : null,
      profiles: complete ? total : null,
      inserted: n,
      updated: 0,
      deleted: 0,
      unchanged: 0,
      errors: 0,
      error: null,
      duration_ms: maxMs + 100,
      complete,
      examined,
      total,
      remaining: total - examined,
    });
  };
  return { call, now: () => clock, budgets };
}

Deno.test("driveHeal: calls until the pass is complete and sums the reports", async () => {
  const p = fakePass(10_000, 3_000);
  const r = await driveHeal({ call: p.call, now: p.now, budgetMs: 120_000, callMs: 1000 });
  assert.equal(r.complete, true);
  assert.equal(r.calls, 4);
  assert.equal(r.inserted, 10_000);
  assert.equal(r.remaining, 0);
  assert.deepEqual(r.progress, { examined: 10_000, total: 10_000 });
  assert.equal(r.auth_users, 10_000);
  assert.ok(p.budgets.every((b) => b === 1000));
});

Deno.test("driveHeal: stops before a call that could not end inside the budget", async () => {
  const p = fakePass(1_000_000, 1_000);
  const r = await driveHeal({ call: p.call, now: p.now, budgetMs: 10_000, callMs: 1000 });
  assert.equal(r.complete, false);
  assert.ok(p.now() <= 10_000, `the drive ended at ${p.now()} ms of a 10 s budget`);
  assert.ok(p.budgets.every((b) => b > 0 && b <= 1000));
  assert.ok(r.calls >= 6, `${r.calls} calls`);
  assert.equal(r.inserted, r.calls * 1000);
  assert.equal(r.remaining, 1_000_000 - r.calls * 1000);
  // the last call's budget left room for its overrun
  assert.ok(p.budgets.at(-1)! <= 10_000 - CALL_OVERRUN_MS);
});

Deno.test("driveHeal: a skipped first call answers skipped; a skipped later call ends the drive", async () => {
  const skipped = (): Promise<ReconcileReport> =>
    Promise.resolve({
      skipped: true,
      run_id: 7,
      complete: false,
      remaining: null,
    });
  const r1 = await driveHeal({ call: skipped, budgetMs: 5_000 });
  assert.equal(r1.skipped, true);
  assert.equal(r1.calls, 1);
  const p = fakePass(10_000, 1_000);
  let n = 0;
  const r2 = await driveHeal({
    call: (ms) => (++n === 3 ? skipped() : p.call(ms)),
    now: p.now,
    budgetMs: 120_000,
  });
  assert.equal(r2.skipped, false);
  assert.equal(r2.complete, false);
  assert.equal(r2.calls, 3);
  assert.equal(r2.inserted, 2_000);
});

Deno.test("driveHeal: a stop request ends the drive between calls; a failed call ends it too", async () => {
  const p = fakePass(10_000, 1_000);
  let calls = 0;
  const r = await driveHeal({
    call: (ms) => (calls++, p.call(ms)),
    now: p.now,
    budgetMs: Infinity,
    stopRequested: () => calls >= 2,
  });
  assert.equal(r.calls, 2);
  assert.equal(r.complete, false);
  const failed = await driveHeal({
    call: () => Promise.resolve({ status: "failed", error: "XX000: boom", complete: false, inserted: 0 }),
    budgetMs: Infinity,
  });
  assert.equal(failed.status, "failed");
  assert.equal(failed.calls, 1);
});

Deno.test("config: the sync-all budget and the call budget have defaults and bounds", () => {
  const base = {
    SUPABASE_URL: "http://127.0.0.1:1",
    SUPABASE_DB_URL: "postgresql://postgres:postgres@127.0.0.1:1/postgres",
    SUPABASE_SERVICE_ROLE_KEY: "service-role-key-for-unit-tests-only",
  };
  const c = loadConfig(base);
  assert.equal(c.syncAllBudgetMs, 120_000);
  assert.equal(c.reconcileCallMs, 1000);
  const set = loadConfig({
    ...base,
    USER_SYNC_SYNC_ALL_BUDGET_MS: "60000",
    USER_SYNC_RECONCILE_CALL_MS: "500",
  });
  assert.equal(set.syncAllBudgetMs, 60_000);
  assert.equal(set.reconcileCallMs, 500);
  for (
    const [name, value] of [
      ["USER_SYNC_SYNC_ALL_BUDGET_MS", "150000"], // over the platform's 150 s with an overrun
      ["USER_SYNC_SYNC_ALL_BUDGET_MS", "two minutes"],
      ["USER_SYNC_RECONCILE_CALL_MS", "5000"], // would hold locks too long
      ["USER_SYNC_RECONCILE_CALL_MS", "0"],
    ]
  ) {
    assert.throws(() => loadConfig({ ...base, [name]: value }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.ok(err.variables.includes(name), `${name}=${value} is refused`);
      return true;
    });
  }
});
