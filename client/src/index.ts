// @user-sync/client: typed access to User Sync for Supabase from any frontend.
// React: import { useUserSync } from "@user-sync/client/react".
export { createUserSyncClient, ilikeContains, type UserSyncClient } from "./client.ts";
export { UserSyncError, type UserSyncErrorBody } from "./errors.ts";
export type { Database, Json } from "./database.types.ts";
export type {
  CreateUserInput,
  ListUsersOptions,
  ListUsersResult,
  Profile,
  ProfileField,
  ProfileUpdate,
  ReconcileReport,
  Role,
  SyncStatus,
  UserSortColumn,
} from "./types.ts";
