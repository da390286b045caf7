// createUserSyncClient: User Sync on a SupabaseClient. Profiles are read and written
// through the Data API under RLS (the signed-in user's JWT decides what is visible);
// status, sync and user creation go through the Edge Functions. In a browser the
// SupabaseClient carries the anon (publishable) key and the user's session: never the
// secret key.
import type { SupabaseClient } from "@supabase/supabase-js";
import type { Database } from "./database.types.ts";
import { fromFunctionResponse, fromPostgrestError, UserSyncError } from "./errors.ts";
import type {
  CreateUserInput,
  ListUsersOptions,
  ListUsersResult,
  Profile,
  ProfileField,
  ProfileUpdate,
  ReconcileReport,
  Role,
  SyncStatus,
} from "./types.ts";

export interface UserSyncClient {
  /** The signed-in user's profile; null when signed out (or not visible, e.g. soft-deleted). */
  getMyProfile(): Promise<Profile | null>;
  /**
   * The signed-in user's profile, created on the spot by a self-sync when it is missing
   * (what useUserSync calls). Concurrent calls for the same user share one request.
   */
  ensureMyProfile(): Promise<Profile | null>;
  /** A profile by id; null when it does not exist or RLS hides it (not yours, not admin). */
  getUserById(id: string): Promise<Profile | null>;
  /** Edits the signed-in user's name / avatar_url; sync stops overwriting an edited field. */
  updateMyProfile(patch: ProfileUpdate): Promise<Profile>;
  /** Forgets the edit of the fields so they follow auth metadata again; answers the re-synced profile. */
  followMetadata(fields: ProfileField | ProfileField[]): Promise<Profile>;
  /** Admins: search, filter and page all profiles (RLS shows a non-admin only themselves). */
  listUsers(options?: ListUsersOptions): Promise<ListUsersResult>;
  /** Admins: change a user's role (written back to Auth's app_metadata). */
  setRole(id: string, role: Role): Promise<Profile>;
  /** Admins / secret key: GET /functions/v1/sync-all → user_sync.status(). */
  status(): Promise<SyncStatus>;
  /** Admins / secret key: POST /functions/v1/sync-all → a reconcile (or what it would do). */
  syncAll(options?: { dryRun?: boolean }): Promise<ReconcileReport>;
  /** POST /functions/v1/sync-all {user_id}: yourself, or anyone as admin; answers the profile. */
  syncUser(id: string): Promise<Profile>;
  /** Admins / secret key: POST /functions/v1/create-user; answers the (guaranteed) profile. */
  createUser(input: CreateUserInput): Promise<Profile>;
}

// Any SupabaseClient (typed with our Database or not) works.
// deno-lint-ignore no-explicit-any
type AnySupabaseClient = SupabaseClient<any, any, any>;

const SORTABLE = new Set(["created_at", "email", "name", "last_sign_in_at", "role"]);
const MAX_PAGE_SIZE = 1000;
/** Concurrent ensureMyProfile calls per SupabaseClient and user: one request. */
const inflight = new WeakMap<object, Map<string, Promise<Profile | null>>>();

/**
 * A search term as a PostgREST `ilike` pattern inside `or=(...)`: LIKE wildcards
 * (`%`, `_`, `\`) are escaped so they match literally, `*` (PostgREST's wildcard) is
 * dropped, and the value is double-quoted so `,` `(` `)` `.` cannot break the filter.
 */
export function ilikeContains(term: string): string {
  const like = term.replace(/\*/g, "").replace(/[\\%_]/g, (c) => `\\${c}`);
  return `"*${like.replace(/[\\"]/g, (c) => `\\${c}`)}*"`;
}

export function createUserSyncClient(supabase: AnySupabaseClient): UserSyncClient {
  const db = supabase as unknown as SupabaseClient<Database>;
  const users = () => db.from("users");

  async function myId(): Promise<string | null> {
    const { data, error } = await supabase.auth.getSession();
    if (error) {
      throw new UserSyncError(error.status ?? 401, {
        error: { code: "invalid_token", message: error.message },
      });
    }
    return data.session?.user.id ?? null;
  }

  async function requireMyId(): Promise<string> {
    const id = await myId();
    if (!id) {
      throw new UserSyncError(401, {
        error: { code: "unauthorized", message: "Sign in first: there is no session." },
      });
    }
    return id;
  }

  async function profileById(id: string): Promise<Profile | null> {
    const { data, error, status } = await users().select("*").eq("id", id).maybeSingle();
    if (error) throw fromPostgrestError(status, error);
    return data;
  }

  async function invoke<T>(name: string, method: "GET" | "POST", body?: unknown): Promise<T> {
    const { data, error } = await supabase.functions.invoke(name, {
      method,
      ...(body === undefined ? {} : { body: body as Record<string, unknown> }),
    });
    if (error) {
      const context = (error as { context?: unknown }).context;
      if (context instanceof Response) throw await fromFunctionResponse(context);
      throw new UserSyncError(0, {
        error: {
          code: "network_error",
          message: `Could not reach the ${name} function: ${error.message}`,
        },
      });
    }
    return data as T;
  }

  async function syncUser(id: string): Promise<Profile> {
    const answer = await invoke<{ user: Profile }>("sync-all", "POST", { user_id: id });
    return answer.user;
  }

  const client: UserSyncClient = {
    async getMyProfile() {
      const id = await myId();
      return id ? await profileById(id) : null;
    },

    async ensureMyProfile() {
      const id = await myId();
      if (!id) return null;
      let perClient = inflight.get(supabase);
      if (!perClient) inflight.set(supabase, perClient = new Map());
      const running = perClient.get(id);
      if (running) return await running;
      const work = (async () => (await profileById(id)) ?? (await syncUser(id)))();
      perClient.set(id, work);
      try {
        return await work;
      } finally {
        perClient.delete(id);
      }
    },

    getUserById: profileById,

    async updateMyProfile(patch) {
      const id = await requireMyId();
      const changes: ProfileUpdate = {};
      if (patch.name !== undefined) changes.name = patch.name;
      if (patch.avatar_url !== undefined) changes.avatar_url = patch.avatar_url;
      if (Object.keys(changes).length === 0) {
        const current = await profileById(id);
        if (current) return current;
        throw new UserSyncError(404, {
          error: { code: "not_found", message: "You have no profile (yet)." },
        });
      }
      const { data, error, status } = await users().update(changes).eq("id", id).select("*")
        .single();
      if (error) throw fromPostgrestError(status, error);
      return data;
    },

    async followMetadata(fields) {
      const id = await requireMyId();
      const list = Array.isArray(fields) ? fields : [fields];
      const changes: Database["public"]["Tables"]["users"]["Update"] = {};
      for (const field of list) {
        if (field === "name") changes.name_edited_at = null;
        else if (field === "avatar_url") changes.avatar_url_edited_at = null;
        else {
          throw new UserSyncError(400, {
            error: { code: "invalid_input", message: `Unknown profile field: ${String(field)}.` },
          });
        }
      }
      const { error, status } = await users().update(changes).eq("id", id).select("id").single();
      if (error) throw fromPostgrestError(status, error);
      // The next sync takes the field from metadata again: run it now.
      return await syncUser(id);
    },

    async listUsers(options = {}) {
      const page = Math.max(1, Math.floor(options.page ?? 1));
      const pageSize = Math.min(MAX_PAGE_SIZE, Math.max(1, Math.floor(options.pageSize ?? 50)));
      const order = options.orderBy ?? { column: "created_at" as const, ascending: false };
      if (!SORTABLE.has(order.column)) {
        throw new UserSyncError(400, {
          error: { code: "invalid_input", message: `Cannot sort by ${String(order.column)}.` },
        });
      }
      // One RPC (public.list_users): under RLS the planner may not use the trigram
      // indexes for ILIKE, so a Data API filter would read every profile.
      const args: Database["public"]["Functions"]["list_users"]["Args"] = {
        p_order_by: order.column,
        p_ascending: order.ascending ?? true,
        p_limit: pageSize,
        p_offset: (page - 1) * pageSize,
        p_include_deleted: options.includeDeleted ?? false,
      };
      const search = options.search?.trim() ?? "";
      if (search !== "") args.p_search = search;
      if (options.role !== undefined) args.p_role = options.role;
      if (options.provider !== undefined) args.p_provider = options.provider;
      const { data, error, status } = await db.rpc("list_users", args);
      if (error) throw fromPostgrestError(status, error);
      const answer = data as unknown as { users: Profile[]; total: number; total_is_estimate: boolean };
      return { users: answer.users, total: answer.total, totalIsEstimate: answer.total_is_estimate };
    },

    async setRole(id, role) {
      const { data, error, status } = await users().update({ role }).eq("id", id).select("*")
        .single();
      if (error) throw fromPostgrestError(status, error);
      return data;
    },

    status: () => invoke<SyncStatus>("sync-all", "GET"),

    syncAll: (options = {}) =>
      invoke<ReconcileReport>("sync-all", "POST", { dry_run: options.dryRun ?? false }),

    syncUser,

    async createUser(input) {
      const answer = await invoke<{ user: Profile }>("create-user", "POST", input);
      return answer.user;
    },
  };
  return client;
}
