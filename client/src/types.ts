// The shapes the client answers. Row types come from the generator
// (database.types.ts, `bash scripts/gen-types.sh`); the rest mirrors the functions' JSON.
import type { Database } from "./database.types.ts";

/** A row of public.users as the Data API returns it (timestamps are ISO strings). */
export type Profile = Database["public"]["Tables"]["users"]["Row"];

/** What a user may change in their own profile (an edit stops sync overwriting the field). */
export interface ProfileUpdate {
  name?: string | null;
  avatar_url?: string | null;
}

/** Profile fields that follow auth metadata until edited in the app. */
export type ProfileField = "name" | "avatar_url";

/** Application role; `user` and `admin` always exist (more live in user_sync.roles). */
// deno-lint-ignore ban-types -- `string & {}` keeps the editor's suggestions of the two literals
export type Role = "user" | "admin" | (string & {});

/** Columns listUsers can sort by. */
export type UserSortColumn = "created_at" | "email" | "name" | "last_sign_in_at" | "role";

export interface ListUsersOptions {
  /** Case-insensitive substring of email or name, taken literally (3+ characters use the trigram indexes). */
  search?: string;
  role?: Role;
  /** Primary provider, e.g. `email`, `google`, `phone`, `anonymous`. */
  provider?: string;
  /** Include soft-deleted users (admins only see them anyway). Default false. */
  includeDeleted?: boolean;
  /** 1-based page number. Default 1. */
  page?: number;
  /** Rows per page, 1..1000. Default 50. */
  pageSize?: number;
  /** Sort order; default newest first (`{ column: "created_at", ascending: false }`). */
  orderBy?: { column: UserSortColumn; ascending?: boolean };
}

export interface ListUsersResult {
  users: Profile[];
  /**
   * Number of users matching the filters: exact whenever anything is filtered; for an
   * admin's unfiltered list of more than 100,000 profiles, the planner's estimate (the rows
   * per page of the last ANALYZE times the table's pages now, see `totalIsEstimate`), so
   * that paging a million profiles stays fast.
   */
  total: number;
  /** True when `total` is the planner's estimate rather than an exact count. */
  totalIsEstimate: boolean;
}

/** user_sync.status(), answered by GET /functions/v1/sync-all. */
export interface SyncStatus {
  auth_users: number;
  profiles: number;
  missing: number;
  orphaned: number;
  drifted: number;
  open_errors: number;
  health: { ok: boolean; problems: { code: string; message: string; hint?: string }[] };
  version: string;
  last_run: {
    run_id: number;
    source: string;
    dry_run: boolean;
    status: string;
    started_at: string;
    finished_at: string | null;
    duration_ms: number | null;
    inserted: number;
    updated: number;
    deleted: number;
    errors: number;
  } | null;
  [key: string]: unknown;
}

/** user_sync.reconcile()'s report, answered by POST /functions/v1/sync-all. */
export interface ReconcileReport {
  run_id?: number;
  source?: string;
  dry_run?: boolean;
  /** Another reconcile was running: nothing was done. */
  skipped?: boolean;
  status?: string;
  auth_users?: number;
  profiles?: number;
  inserted?: number;
  updated?: number;
  deleted?: number;
  unchanged?: number;
  errors?: number;
  duration_ms?: number;
  complete?: boolean;
  remaining?: number;
  [key: string]: unknown;
}

/** POST /functions/v1/create-user (email or phone required). */
export interface CreateUserInput {
  email?: string;
  phone?: string;
  password?: string;
  email_confirm?: boolean;
  phone_confirm?: boolean;
  name?: string;
  avatar_url?: string;
  role?: Role;
  user_metadata?: Record<string, unknown>;
}
