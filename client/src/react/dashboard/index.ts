// @user-sync/client/dashboard: the admin dashboard as a React component, for apps to embed.
export { UserSyncDashboard, type UserSyncDashboardProps } from "./UserSyncDashboard.tsx";
export {
  type Activity,
  createDashboardApi,
  type DashboardApi,
  type HealProgress,
  type HealthProblem,
  type OpenError,
  type Run,
  type SyncReport,
  type SyncStatus,
} from "./api.ts";
export { useAutoRefresh } from "./useAutoRefresh.ts";
