// @user-sync/client/dashboard: the admin dashboard as a React component, for apps to embed.
export { UserSyncDashboard, type UserSyncDashboardProps } from "./UserSyncDashboard.tsx";
export {
  createDashboardApi,
  type DashboardApi,
  DashboardError,
  type OpenError,
  type Profile,
  type Run,
  type SyncReport,
  type SyncStatus,
  type UserQuery,
} from "./api.ts";
export { useAutoRefresh } from "./useAutoRefresh.ts";
