// The dashboard's data: everything it shows or changes, through the client package
// (createUserSyncClient): profiles through the Data API under RLS with the signed-in user's
// JWT; status, syncs, and the runs and open errors lists through the sync-all function
// (user_sync is never exposed through the Data API). Nothing here holds a secret key: the
// browser has the anon key and a user JWT. Every failure is a UserSyncError.
import type { SupabaseClient } from "@supabase/supabase-js";
import { createUserSyncClient } from "../../client.ts";
import { fromFunctionResponse, UserSyncError } from "../../errors.ts";
import type { ListUsersOptions, ListUsersResult, Profile, ReconcileReport, SyncStatus as BaseStatus } from "../../types.ts";

export type { Profile };

export interface HealthProblem {
  code: string;
  message: string;
  hint: string;
}

/** status().heal: the unfinished reconcile pass (null when none is under way). */
export interface HealProgress {
  examined?: number;
  total?: number | null;
  /** Users examined per second so far. */
  rate?: number;
  eta_seconds?: number | null;
  started_at?: string;
  [key: string]: unknown;
}

export interface Run {
  run_id: number;
  source: string;
  dry_run: boolean;
  status: string;
  started_at: string;
  finished_at: string | null;
  duration_ms: number | null;
  auth_users: number | null;
  profiles: number | null;
  inserted: number;
  updated: number;
  deleted: number;
  unchanged: number;
  errors: number;
  error: string | null;
}

export interface OpenError {
  id: number;
  user_id: string | null;
  email: string | null;
  source: string;
  sqlstate: string | null;
  message: string;
  occurred_at: string;
  run_id: number | null;
}

/** user_sync.status() as the dashboard reads it (sync-all GET). */
export interface SyncStatus extends BaseStatus {
  health: { ok: boolean; problems: HealthProblem[] };
  heal?: HealProgress | null;
}

/**
 * The recent runs, the open errors and the unfinished heal's progress (sync-all GET
 * ?include=runs,errors,heal&status=false): instant at any size.
 */
export interface Activity {
  runs: Run[];
  errors: OpenError[];
  heal?: HealProgress | null;
}

/** The answer of a sync-all POST (a reconcile report; a bounded heal adds complete/remaining). */
export type SyncReport = ReconcileReport & {
  skipped?: boolean;
  status?: string;
  dry_run?: boolean;
  inserted?: number;
  updated?: number;
  deleted?: number;
  errors?: number;
  duration_ms?: number;
  complete?: boolean;
  remaining?: number;
  calls?: number;
};

/** What the dashboard needs from the backend; `createDashboardApi` is the real one. */
export interface DashboardApi {
  /** The signed-in user's profile, self-synced first when it is missing. */
  getMyProfile(): Promise<Profile | null>;
  updateMyProfile(patch: { name?: string | null; avatar_url?: string | null }): Promise<Profile>;
  /** user_sync.status(): a scan of every user (0.3 s at 1M users, 4 s at 10M). */
  status(): Promise<SyncStatus>;
  /** The recent runs, open errors and heal progress: instant at any size. */
  activity(): Promise<Activity>;
  syncAll(options: { dryRun: boolean }): Promise<SyncReport>;
  listUsers(options: ListUsersOptions): Promise<ListUsersResult>;
  setRole(id: string, role: string): Promise<Profile>;
}

export function createDashboardApi(supabase: SupabaseClient): DashboardApi {
  const client = createUserSyncClient(supabase);
  return {
    getMyProfile: () => client.ensureMyProfile(),
    updateMyProfile: (patch) => client.updateMyProfile(patch),
    status: () => client.status() as Promise<SyncStatus>,
    async activity() {
      // Without status()'s counts, so that they show while status() is still counting.
      const { data, error } = await supabase.functions.invoke("sync-all?include=runs,errors,heal&status=false", {
        method: "GET",
      });
      if (error) {
        const context = (error as { context?: unknown }).context;
        if (context instanceof Response) throw await fromFunctionResponse(context);
        throw new UserSyncError(0, {
          error: { code: "network_error", message: `Could not reach the sync-all function: ${error.message}` },
        });
      }
      return data as Activity;
    },
    syncAll: (options) => client.syncAll(options) as Promise<SyncReport>,
    listUsers: (options) => client.listUsers(options),
    setRole: (id, role) => client.setRole(id, role),
  };
}
