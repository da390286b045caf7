// The dashboard's data: everything it shows or changes, in one place. Reads and writes of
// profiles go through the Data API under RLS with the signed-in user's JWT; status, runs,
// errors and syncs go through the sync-all function (user_sync is never exposed through the
// Data API). Nothing here holds a secret key: the browser has the anon key and a user JWT.
import type { SupabaseClient } from "@supabase/supabase-js";

/** A row of public.users as the dashboard shows it. */
export interface Profile {
  id: string;
  email: string | null;
  phone: string | null;
  name: string | null;
  avatar_url: string | null;
  role: string;
  provider: string | null;
  providers: string[] | null;
  is_anonymous: boolean | null;
  created_at: string | null;
  last_sign_in_at: string | null;
  deleted_at: string | null;
}

export interface HealthProblem {
  code: string;
  message: string;
  hint: string;
}

/** A long heal still under way (present in status() only while one is unfinished). */
export interface HealProgress {
  examined?: number;
  total?: number;
  rate?: number;
  eta?: number | string;
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

/** user_sync.status() plus the dashboard's lists (sync-all GET ?include=runs,errors). */
export interface SyncStatus {
  auth_users: number;
  profiles: number;
  missing: number;
  orphaned: number;
  drifted: number;
  open_errors: number;
  health?: { ok: boolean; problems: HealthProblem[] };
  version?: string;
  last_run?: Partial<Run> | null;
  heal?: HealProgress | null;
  runs?: Run[];
  errors?: OpenError[];
}

/** The answer of a sync-all POST (a reconcile report; a bounded heal adds complete/remaining). */
export interface SyncReport {
  run_id?: number;
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
  [key: string]: unknown;
}

export interface UserQuery {
  search?: string;
  role?: string;
  provider?: string;
  includeDeleted?: boolean;
  page: number;
  pageSize: number;
  orderBy?: { column: keyof Profile; ascending?: boolean };
}

/** One error type for everything the dashboard calls: our `{error:{code,message}}` and the HTTP status. */
export class DashboardError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly status: number | null,
  ) {
    super(message);
    this.name = "DashboardError";
  }
}

export const PROFILE_COLUMNS =
  "id,email,phone,name,avatar_url,role,provider,providers,is_anonymous,created_at,last_sign_in_at,deleted_at";

/** What the dashboard needs from the backend; `createDashboardApi` is the real one. */
export interface DashboardApi {
  getMyProfile(): Promise<Profile | null>;
  updateMyProfile(patch: { name?: string | null; avatar_url?: string | null }): Promise<Profile>;
  /** The signed-in user's profile missing: sync it (sync-all POST {user_id}). */
  syncMe(): Promise<void>;
  status(): Promise<SyncStatus>;
  syncAll(options: { dryRun: boolean }): Promise<SyncReport>;
  listUsers(query: UserQuery): Promise<{ users: Profile[]; total: number }>;
  setRole(id: string, role: string): Promise<Profile>;
}

async function functionError(error: unknown): Promise<DashboardError> {
  // supabase-js: FunctionsHttpError carries the Response; relay/fetch errors do not.
  const ctx = (error as { context?: unknown })?.context;
  if (ctx instanceof Response) {
    let body: { error?: { code?: string; message?: string } } | null = null;
    try {
      body = await ctx.clone().json();
    } catch {
      // not JSON
    }
    return new DashboardError(
      body?.error?.message ?? `sync-all answered HTTP ${ctx.status}`,
      body?.error?.code ?? "http_error",
      ctx.status,
    );
  }
  return new DashboardError(
    "The sync-all function cannot be reached. Is it deployed, and is the project URL right?",
    "unreachable",
    null,
  );
}

function dataError(error: { message: string; code?: string }, status?: number): DashboardError {
  return new DashboardError(error.message, error.code ?? "data_api_error", status ?? null);
}

/** PostgREST `or` filter values: quote so commas, dots and parentheses in a search are literal. */
function ilikeTerm(search: string): string {
  const escaped = search.replace(/[\\%_]/g, (c) => `\\${c}`).replace(/"/g, '\\"');
  return `"*${escaped}*"`;
}

export function createDashboardApi(supabase: SupabaseClient): DashboardApi {
  const invoke = async <T>(path: string, init: { method: "GET" | "POST"; body?: unknown }): Promise<T> => {
    const { data, error } = await supabase.functions.invoke(path, init as never);
    if (error) throw await functionError(error);
    return data as T;
  };
  const me = async (): Promise<string> => {
    const { data } = await supabase.auth.getSession();
    const id = data.session?.user.id;
    if (!id) throw new DashboardError("Not signed in.", "not_signed_in", 401);
    return id;
  };
  return {
    async getMyProfile() {
      const id = await me();
      const { data, error, status } = await supabase.from("users").select(PROFILE_COLUMNS).eq("id", id)
        .maybeSingle();
      if (error) throw dataError(error, status);
      return (data as Profile | null) ?? null;
    },
    async updateMyProfile(patch) {
      const id = await me();
      const { data, error, status } = await supabase.from("users").update(patch).eq("id", id)
        .select(PROFILE_COLUMNS).single();
      if (error) throw dataError(error, status);
      return data as Profile;
    },
    async syncMe() {
      await invoke("sync-all", { method: "POST", body: { user_id: await me() } });
    },
    async status() {
      return await invoke<SyncStatus>("sync-all?include=runs,errors", { method: "GET" });
    },
    async syncAll({ dryRun }) {
      return await invoke<SyncReport>("sync-all", { method: "POST", body: { dry_run: dryRun } });
    },
    async listUsers(query) {
      let q = supabase.from("users").select(PROFILE_COLUMNS, { count: "exact" });
      const search = query.search?.trim();
      if (search) q = q.or(`email.ilike.${ilikeTerm(search)},name.ilike.${ilikeTerm(search)}`);
      if (query.role) q = q.eq("role", query.role);
      if (query.provider) q = q.eq("provider", query.provider);
      if (!query.includeDeleted) q = q.is("deleted_at", null);
      const order = query.orderBy ?? { column: "created_at", ascending: false };
      q = q.order(order.column, { ascending: order.ascending ?? true }).order("id");
      const from = (query.page - 1) * query.pageSize;
      const { data, count, error, status } = await q.range(from, from + query.pageSize - 1);
      if (error) throw dataError(error, status);
      return { users: (data ?? []) as unknown as Profile[], total: count ?? 0 };
    },
    async setRole(id, role) {
      const { data, error, status } = await supabase.from("users").update({ role }).eq("id", id)
        .select(PROFILE_COLUMNS).single();
      if (error) throw dataError(error, status);
      return data as Profile;
    },
  };
}
