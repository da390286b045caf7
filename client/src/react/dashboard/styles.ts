// The dashboard's CSS, scoped under .usd-root (class names prefixed usd-), so an app can
// embed the component without a stylesheet of its own. Narrow screens: one column.
export const DASHBOARD_CSS = `
.usd-root { --usd-fg:#0f172a; --usd-muted:#64748b; --usd-line:#e2e8f0; --usd-bg:#f8fafc; --usd-card:#fff;
  --usd-accent:#2563eb; --usd-bad:#dc2626; --usd-ok:#059669;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--usd-fg);
  background: var(--usd-bg); min-height: 100%; padding: 16px 20px 40px; box-sizing: border-box; }
.usd-root *, .usd-root *::before, .usd-root *::after { box-sizing: border-box; }
.usd-root h1 { font-size: 20px; margin: 0; display: flex; align-items: center; gap: 8px; }
.usd-root h2 { font-size: 15px; margin: 0 0 12px; }
.usd-header { display: flex; justify-content: space-between; align-items: center; gap: 12px; flex-wrap: wrap;
  margin-bottom: 16px; max-width: 1200px; margin-inline: auto; }
.usd-root main { max-width: 1200px; margin: 0 auto; }
.usd-who { display: flex; align-items: center; gap: 10px; min-width: 0; }
.usd-who .usd-muted { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; max-width: 60vw; }
.usd-muted { color: var(--usd-muted); }
.usd-root button { font: inherit; border: 1px solid var(--usd-line); background: #fff; color: var(--usd-fg);
  border-radius: 6px; padding: 6px 12px; cursor: pointer; }
.usd-root button:hover:not(:disabled) { border-color: var(--usd-accent); }
.usd-root button:disabled { opacity: .55; cursor: default; }
.usd-root button.usd-primary { background: var(--usd-accent); border-color: var(--usd-accent); color: #fff; }
.usd-root input, .usd-root select { font: inherit; border: 1px solid var(--usd-line); border-radius: 6px;
  padding: 6px 8px; background: #fff; color: var(--usd-fg); min-width: 0; }
.usd-toolbar { display: flex; justify-content: space-between; align-items: center; gap: 12px; flex-wrap: wrap; margin-bottom: 12px; }
.usd-actions { display: flex; gap: 8px; }
.usd-cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: 10px; margin-bottom: 12px; }
.usd-card { background: var(--usd-card); border: 1px solid var(--usd-line); border-radius: 8px; padding: 12px 14px; }
.usd-card-value { font-size: 24px; font-weight: 650; font-variant-numeric: tabular-nums; }
.usd-card-label { color: var(--usd-muted); }
.usd-card-bad { border-color: #fecaca; background: #fef2f2; }
.usd-card-bad .usd-card-value { color: var(--usd-bad); }
.usd-panel { background: var(--usd-card); border: 1px solid var(--usd-line); border-radius: 8px; padding: 14px 16px; margin-bottom: 12px; }
.usd-notice, .usd-alert, .usd-loading, .usd-empty { border-radius: 8px; padding: 10px 12px; margin-bottom: 12px; }
.usd-notice { background: #eff6ff; border: 1px solid #bfdbfe; }
.usd-notice.usd-ok { background: #ecfdf5; border-color: #a7f3d0; }
.usd-alert { background: #fef2f2; border: 1px solid #fecaca; color: #991b1b; display: flex; gap: 10px; align-items: center; flex-wrap: wrap; }
.usd-loading { color: var(--usd-muted); }
.usd-empty { color: var(--usd-muted); background: var(--usd-bg); border: 1px dashed var(--usd-line); }
.usd-problems { list-style: none; padding: 0; margin: 0 0 12px; display: grid; gap: 8px; }
.usd-problem { background: #fffbeb; border: 1px solid #fde68a; border-radius: 8px; padding: 10px 12px; }
.usd-problem code { color: var(--usd-muted); font-size: 12px; }
.usd-hint { color: #78350f; margin-top: 2px; }
.usd-progress { background: #fff; border: 1px solid #bfdbfe; border-radius: 8px; padding: 10px 12px; margin-bottom: 12px; }
.usd-progress-label { margin-bottom: 6px; }
.usd-progress-track { height: 8px; background: #e0e7ff; border-radius: 4px; overflow: hidden; position: relative; }
.usd-progress-fill { height: 100%; background: var(--usd-accent); transition: width .4s; }
.usd-progress-indeterminate { width: 30%; position: absolute; animation: usd-slide 1.2s ease-in-out infinite; }
@keyframes usd-slide { from { left: -30%; } to { left: 100%; } }
.usd-chart { position: relative; height: 220px; margin-bottom: 12px; }
.usd-table-wrap { overflow-x: auto; }
.usd-table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
.usd-table th, .usd-table td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--usd-line); vertical-align: top; }
.usd-table th { color: var(--usd-muted); font-weight: 500; white-space: nowrap; }
.usd-table .usd-num { text-align: right; white-space: nowrap; }
.usd-stale { opacity: .6; }
.usd-deleted td { color: var(--usd-muted); }
.usd-badge { display: inline-block; font-size: 11px; border-radius: 999px; padding: 1px 8px; background: #f1f5f9; margin-right: 4px; white-space: nowrap; }
.usd-status-ok { background: #d1fae5; color: #065f46; }
.usd-status-errors, .usd-status-running { background: #fef3c7; color: #92400e; }
.usd-status-failed { background: #fee2e2; color: #991b1b; }
.usd-admin-badge { background: #dbeafe; color: #1e40af; font-size: 12px; }
.usd-filters { display: flex; gap: 8px; flex-wrap: wrap; margin-bottom: 10px; align-items: center; }
.usd-filters input[type=search] { flex: 1 1 220px; }
.usd-check { display: flex; align-items: center; gap: 6px; }
.usd-pager { display: flex; gap: 10px; align-items: center; justify-content: flex-end; margin-top: 10px; }
.usd-user { display: flex; gap: 8px; align-items: center; }
.usd-avatar-sm { width: 28px; height: 28px; border-radius: 50%; flex: none; object-fit: cover; }
.usd-avatar { width: 64px; height: 64px; border-radius: 50%; flex: none; object-fit: cover; }
.usd-avatar-blank { display: inline-block; background: #cbd5e1; }
.usd-form { display: grid; gap: 10px; max-width: 420px; }
.usd-form label { display: grid; gap: 4px; }
.usd-signin { margin: 40px auto; }
.usd-profile { max-width: 560px; }
.usd-profile-head { display: flex; gap: 14px; align-items: center; margin-bottom: 14px; }
.usd-profile-name { font-size: 18px; font-weight: 600; }
@media (max-width: 640px) {
  .usd-root { padding: 10px 10px 30px; }
  .usd-cards { grid-template-columns: repeat(2, 1fr); }
  .usd-toolbar, .usd-actions { width: 100%; }
  .usd-actions button { flex: 1; }
  .usd-pager { justify-content: space-between; }
}
`;
