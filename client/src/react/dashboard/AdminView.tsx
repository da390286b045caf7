// What an admin sees: status cards and health problems, Sync now / Dry run with progress,
// the runs chart and table, open errors, and the users table. Status, runs and errors
// refresh while the page is open and visible.
import { useCallback, useRef, useState } from "react";
import type { Activity, DashboardApi, HealProgress, SyncReport, SyncStatus } from "./api.ts";
import { clock, count, duration, eta, when } from "./format.ts";
import { RunsChart } from "./RunsChart.tsx";
import { useAutoRefresh } from "./useAutoRefresh.ts";
import { UsersTable } from "./UsersTable.tsx";

/** Most calls one Sync now makes while sync-all answers `complete: false`. */
const MAX_SYNC_CALLS = 50;

interface SyncState {
  dryRun: boolean;
  calls: number;
  startedAt: number;
}

function Card({ label, value, tone, testId }: { label: string; value: number | undefined; tone?: "bad" | "ok"; testId: string }) {
  return (
    <div className={`usd-card${tone ? ` usd-card-${tone}` : ""}`} data-testid={testId}>
      <div className="usd-card-value" data-testid={`${testId}-value`}>{count(value)}</div>
      <div className="usd-card-label">{label}</div>
    </div>
  );
}

function HealBar(
  { heal, status, sync, report }: { heal: HealProgress | null; status: SyncStatus | null; sync: SyncState; report: SyncReport | null },
) {
  const total = heal?.total ?? (report && typeof report.remaining === "number" && typeof status?.auth_users === "number"
    ? status.auth_users
    : undefined);
  const done = heal?.examined ?? (typeof total === "number" && typeof report?.remaining === "number"
    ? total - report.remaining
    : undefined);
  const pct = typeof done === "number" && typeof total === "number" && total > 0
    ? Math.max(0, Math.min(100, (done / total) * 100))
    : null;
  const left = eta(heal?.eta_seconds ?? undefined);
  return (
    <div className="usd-progress" role="status" data-testid="sync-progress">
      <div className="usd-progress-label">
        {sync.dryRun ? "Dry run" : "Sync"} running{sync.calls > 1 ? ` (call ${sync.calls})` : ""}…
        {pct !== null ? ` ${count(done)} of ${count(total)} examined (${pct.toFixed(0)}%)` : ""}
        {typeof heal?.rate === "number" ? ` · ${count(Math.round(heal.rate))}/s` : ""}
        {left ? ` · ${left}` : ""}
      </div>
      <div className="usd-progress-track">
        <div
          className={pct === null ? "usd-progress-fill usd-progress-indeterminate" : "usd-progress-fill"}
          style={pct === null ? undefined : { width: `${pct}%` }}
          role="progressbar"
          aria-valuemin={0}
          aria-valuemax={100}
          aria-valuenow={pct === null ? undefined : Math.round(pct)}
        />
      </div>
    </div>
  );
}

function reportLine(r: SyncReport): string {
  if (r.skipped) return "Another run was in progress; this one was skipped.";
  const verb = r.dry_run ? "would insert" : "inserted";
  return `Run #${r.run_id ?? "?"} ${r.status ?? ""}: ${verb} ${count(r.inserted)}, ${r.dry_run ? "update" : "updated"} ${
    count(r.updated)
  }, ${r.dry_run ? "delete" : "deleted"} ${count(r.deleted)}, ${count(r.errors)} errors, ${duration(r.duration_ms)}.`;
}

export function AdminView({ api, refreshIntervalMs, roles }: { api: DashboardApi; refreshIntervalMs: number; roles: string[] }) {
  const [status, setStatus] = useState<SyncStatus | null>(null);
  const [statusError, setStatusError] = useState<string | null>(null);
  const [activity, setActivity] = useState<Activity | null>(null);
  const [activityError, setActivityError] = useState<string | null>(null);
  const [sync, setSync] = useState<SyncState | null>(null);
  const [report, setReport] = useState<SyncReport | null>(null);
  const [syncError, setSyncError] = useState<string | null>(null);
  const [usersVersion, setUsersVersion] = useState(0);
  const syncing = useRef(false);

  // Runs, errors and the heal's progress are instant at any size: they refresh on their
  // own, every second while a sync runs. status()'s counts are a scan of every user
  // (about 4 s at 10M users), so they are not asked for while a sync runs (its progress
  // comes with the lists), nor again sooner than three times as long as the last count
  // took: an open tab keeps at most a quarter of one database core counting. Each shows
  // as soon as it arrives; the last figures stay until the next ones.
  const loadActivity = useCallback(async () => {
    await api.activity().then(
      (a) => {
        setActivity(a);
        setActivityError(null);
      },
      (err) => setActivityError(err instanceof Error ? err.message : String(err)),
    );
  }, [api]);
  const counting = useRef<Promise<void> | null>(null);
  const lastCount = useRef({ endedAt: 0, ms: 0 });
  const loadCounts: (force: boolean) => Promise<void> = useCallback((force: boolean): Promise<void> => {
    // A count under way may have started before what the caller wants counted (a sync).
    if (counting.current) return force ? counting.current.then(() => loadCounts(true)) : counting.current;
    const { endedAt, ms } = lastCount.current;
    if (!force && (syncing.current || Date.now() - endedAt < 3 * ms)) return Promise.resolve();
    const started = Date.now();
    counting.current = api.status().then(
      (s) => {
        setStatus(s);
        setStatusError(null);
      },
      (err) => setStatusError(err instanceof Error ? err.message : String(err)),
    ).finally(() => {
      lastCount.current = { endedAt: Date.now(), ms: Date.now() - started };
      counting.current = null;
    });
    return counting.current;
  }, [api]);
  const refreshCounts = useCallback(() => loadCounts(false), [loadCounts]);

  const auto = useAutoRefresh(loadActivity, sync ? Math.min(1000, refreshIntervalMs || 1000) : refreshIntervalMs);
  useAutoRefresh(refreshCounts, refreshIntervalMs);

  const runSync = async (dryRun: boolean) => {
    if (syncing.current) return;
    syncing.current = true;
    setSyncError(null);
    setReport(null);
    const state: SyncState = { dryRun, calls: 0, startedAt: Date.now() };
    try {
      let last: SyncReport;
      do {
        state.calls += 1;
        setSync({ ...state });
        last = await api.syncAll({ dryRun });
        setReport(last);
      } while (last.complete === false && !last.skipped && state.calls < MAX_SYNC_CALLS);
    } catch (err) {
      setSyncError(err instanceof Error ? err.message : String(err));
    } finally {
      syncing.current = false;
      setSync(null);
      await Promise.all([loadActivity(), loadCounts(true)]);
      setUsersVersion((v) => v + 1);
    }
  };

  const problems = status?.health?.problems ?? [];
  const runs = activity?.runs ?? [];
  const errors = activity?.errors ?? [];

  return (
    <div className="usd-admin" data-testid="admin-view">
      <div className="usd-toolbar">
        <div className="usd-actions">
          <button type="button" className="usd-primary" onClick={() => void runSync(false)} disabled={sync !== null} data-testid="sync-now">
            Sync now
          </button>
          <button type="button" onClick={() => void runSync(true)} disabled={sync !== null} data-testid="dry-run">
            Dry run
          </button>
        </div>
        <div className="usd-muted" data-testid="refresh-state">
          {auto.active
            ? `Auto-refresh every ${(refreshIntervalMs / 1000).toLocaleString("en-US", { maximumFractionDigits: 1 })} s`
            : "Auto-refresh paused"}
          {" · updated "}
          {clock(auto.lastRefreshed)}
        </div>
      </div>

      {sync && <HealBar heal={activity?.heal ?? status?.heal ?? null} status={status} sync={sync} report={report} />}
      {!sync && report && <div className="usd-notice" data-testid="sync-report">{reportLine(report)}</div>}
      {syncError && <div className="usd-alert" role="alert" data-testid="sync-error">Sync failed: {syncError}</div>}
      {statusError && (
        <div className="usd-alert" role="alert" data-testid="status-error">
          Cannot load the sync status: {statusError}
          {status ? " (showing the last figures)" : ""}
          <button type="button" onClick={() => void loadCounts(true)}>Retry</button>
        </div>
      )}

      {activityError && (
        <div className="usd-alert" role="alert" data-testid="activity-error">Cannot load the runs and errors: {activityError}</div>
      )}

      {!status && !statusError && (
        <div className="usd-loading" data-testid="status-loading">Counting users, profiles and drift… (a scan of every user: seconds with millions)</div>
      )}

      {status && (
        <section className="usd-cards" aria-label="Sync status" data-testid="status-cards">
          <Card label="auth users" value={status.auth_users} testId="card-auth-users" />
          <Card label="profiles" value={status.profiles} testId="card-profiles" />
          <Card label="missing" value={status.missing} tone={status.missing ? "bad" : "ok"} testId="card-missing" />
          <Card label="drifted" value={status.drifted} tone={status.drifted ? "bad" : "ok"} testId="card-drifted" />
          <Card label="orphaned" value={status.orphaned} tone={status.orphaned ? "bad" : "ok"} testId="card-orphaned" />
          <Card label="open errors" value={status.open_errors} tone={status.open_errors ? "bad" : "ok"} testId="card-open-errors" />
        </section>
      )}

      {status && (
        <section aria-label="Health" data-testid="health">
          {status.health === undefined
            ? null
            : problems.length === 0
            ? <div className="usd-notice usd-ok" data-testid="health-ok">Healthy: trigger, cron job, Vault secrets and recent runs all in order.</div>
            : (
              <ul className="usd-problems">
                {problems.map((p) => (
                  <li key={p.code} className="usd-problem" data-testid={`problem-${p.code}`}>
                    <strong>{p.message}</strong> <code>{p.code}</code>
                    <div className="usd-hint">{p.hint}</div>
                  </li>
                ))}
              </ul>
              )}
          </section>
      )}

      {activity && (
        <>
          <section className="usd-panel" aria-label="Recent runs">
            <h2>Recent runs</h2>
            {runs.length === 0 ? <div className="usd-empty" data-testid="runs-empty">No runs yet. Sync now starts one; the cron job runs every 5 minutes.</div> : (
              <>
                <RunsChart runs={runs} />
                <div className="usd-table-wrap">
                  <table className="usd-table" data-testid="runs-table">
                    <thead>
                      <tr>
                        <th>run</th>
                        <th>started</th>
                        <th>source</th>
                        <th>status</th>
                        <th className="usd-num">inserted</th>
                        <th className="usd-num">updated</th>
                        <th className="usd-num">deleted</th>
                        <th className="usd-num">errors</th>
                        <th className="usd-num">duration</th>
                      </tr>
                    </thead>
                    <tbody>
                      {runs.map((r) => (
                        <tr key={r.run_id} data-testid="run-row" data-run-id={r.run_id}>
                          <td>#{r.run_id}</td>
                          <td>{when(r.started_at)}</td>
                          <td>{r.source}</td>
                          <td>
                            <span className={`usd-badge usd-status-${r.status}`}>{r.status}</span>
                            {r.dry_run ? <span className="usd-badge">dry run</span> : null}
                          </td>
                          <td className="usd-num">{count(r.inserted)}</td>
                          <td className="usd-num">{count(r.updated)}</td>
                          <td className="usd-num">{count(r.deleted)}</td>
                          <td className="usd-num">{count(r.errors)}</td>
                          <td className="usd-num">{duration(r.duration_ms)}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              </>
            )}
          </section>

          <section className="usd-panel" aria-label="Open errors">
            <h2>Open errors</h2>
            {errors.length === 0 ? <div className="usd-empty" data-testid="errors-empty">No open errors.</div> : (
              <div className="usd-table-wrap">
                <table className="usd-table" data-testid="errors-table">
                  <thead>
                    <tr>
                      <th>user</th>
                      <th>where</th>
                      <th>message</th>
                      <th>when</th>
                    </tr>
                  </thead>
                  <tbody>
                    {errors.map((e) => (
                      <tr key={e.id} data-testid="error-row">
                        <td>{e.email ?? e.user_id ?? "–"}</td>
                        <td>{e.source}</td>
                        <td>{e.message}{e.sqlstate ? <code> {e.sqlstate}</code> : null}</td>
                        <td>{when(e.occurred_at)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </section>
        </>
      )}

      <UsersTable api={api} roles={roles} reloadKey={usersVersion} />
    </div>
  );
}
