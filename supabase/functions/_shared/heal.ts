// Driving a heal: bounded user_sync.reconcile(p_dry_run, p_source, p_max_ms) calls,
// each its own transaction, until the pass is complete or a wall-clock budget is
// spent. One home for the loop: sync-all's POST and the heal command (scripts/heal.ts)
// both use it. Nothing here holds user data; the database keeps the progress, so a
// stopped drive (budget, Ctrl-C, crash) is continued by the next one from any runner.

/** One reconcile call's report (user_sync.reconcile). */
export interface ReconcileReport {
  run_id?: number;
  source?: string;
  dry_run?: boolean;
  skipped?: boolean;
  reason?: string;
  status?: string;
  auth_users?: number | null;
  profiles?: number | null;
  inserted?: number;
  updated?: number;
  deleted?: number;
  unchanged?: number;
  errors?: number;
  error?: string | null;
  duration_ms?: number;
  complete?: boolean;
  examined?: number | null;
  total?: number | null;
  remaining?: number | null;
  full_compare?: boolean;
}

/** The summed report of a drive: the reconcile report's keys plus calls and progress. */
export interface HealReport extends ReconcileReport {
  complete: boolean;
  calls: number;
  progress: { examined: number | null; total: number | null };
  longest_call_ms: number;
}

/** Where a drive stands after each call (for progress bars and logs). */
export interface HealProgress {
  calls: number;
  examined: number | null;
  total: number | null;
  remaining: number | null;
  /** Users examined per second by this drive (null before the first call). */
  rate: number | null;
  eta_seconds: number | null;
  elapsed_ms: number;
  last: ReconcileReport;
}

/** A call may overrun its budget by one batch, at most this long (the contract). */
export const CALL_OVERRUN_MS = 1500;

export interface DriveOptions {
  /** Runs one reconcile call with this budget, in its own transaction. */
  call: (maxMs: number) => Promise<ReconcileReport>;
  /** Wall-clock budget of the whole drive; Infinity for "until complete". */
  budgetMs: number;
  /** Budget of each call (default 1000 ms). */
  callMs?: number;
  /** Asked before each call after the first: true stops the drive (e.g. Ctrl-C). */
  stopRequested?: () => boolean;
  onProgress?: (p: HealProgress) => void;
  now?: () => number;
}

/**
 * Calls reconcile until the pass is complete, a call is skipped (another runner is
 * at it) or fails, a stop is requested, or the next call would not end inside the
 * budget. Answers the summed report.
 */
export async function driveHeal(opts: DriveOptions): Promise<HealReport> {
  const now = opts.now ?? (() => performance.now());
  const callMs = opts.callMs ?? 1000;
  const started = now();
  const sum: HealReport = {
    skipped: false,
    status: "ok",
    inserted: 0,
    updated: 0,
    deleted: 0,
    unchanged: 0,
    errors: 0,
    error: null,
    complete: false,
    calls: 0,
    progress: { examined: null, total: null },
    longest_call_ms: 0,
  };
  let firstExamined: number | null = null;
  for (;;) {
    const left = opts.budgetMs - (now() - started);
    // The first call always runs; later ones only when they end inside the budget.
    const maxMs = sum.calls === 0
      ? Math.max(1, Math.min(callMs, left))
      : Math.min(callMs, left - CALL_OVERRUN_MS);
    if (sum.calls > 0 && (maxMs < 50 || opts.stopRequested?.())) break;
    const t0 = now();
    const r = await opts.call(Math.round(maxMs));
    const callTook = now() - t0;
    sum.calls++;
    sum.longest_call_ms = Math.max(sum.longest_call_ms, Math.round(callTook));
    if (r.skipped) {
      // Another runner is driving the pass: leave it to it.
      if (sum.calls === 1) return { ...sum, ...r, complete: false, calls: 1 };
      break;
    }
    for (const k of ["inserted", "updated", "deleted", "unchanged", "errors"] as const) {
      sum[k] = (sum[k] ?? 0) + (r[k] ?? 0);
    }
    sum.run_id = r.run_id;
    sum.source = r.source;
    sum.dry_run = r.dry_run;
    sum.auth_users = r.auth_users;
    sum.profiles = r.profiles;
    sum.complete = r.complete === true;
    sum.remaining = r.remaining ?? null;
    sum.full_compare = r.full_compare;
    sum.progress = { examined: r.examined ?? null, total: r.total ?? null };
    if (r.error) sum.error = r.error;
    if (r.status === "failed") sum.status = "failed";
    else if (r.status === "errors" && sum.status === "ok") sum.status = "errors";
    if (firstExamined === null && r.examined != null) {
      // What the pass had examined before this drive began.
      firstExamined = r.complete
        ? 0
        : Math.max(0, r.examined - ((r.unchanged ?? 0) + (r.inserted ?? 0) + (r.updated ?? 0)));
    }
    const elapsed = now() - started;
    const done = r.examined != null && firstExamined !== null ? r.examined - firstExamined : null;
    const rate = done !== null && elapsed > 0 ? done / (elapsed / 1000) : null;
    opts.onProgress?.({
      calls: sum.calls,
      examined: r.examined ?? null,
      total: r.total ?? null,
      remaining: r.remaining ?? null,
      rate: rate === null ? null : Math.round(rate),
      eta_seconds: rate && r.remaining != null ? Math.ceil(r.remaining / rate) : null,
      elapsed_ms: Math.round(elapsed),
      last: r,
    });
    if (sum.complete || r.status === "failed") break;
  }
  sum.duration_ms = Math.round(now() - started);
  return sum;
}
