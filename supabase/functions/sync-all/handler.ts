// sync-all: POST runs user_sync.reconcile() and answers its report; GET answers
// user_sync.status(). Callers: the cron job (secret key) and admins.
// Self-sync: POST {"user_id"} syncs that one user and answers {user: <profile>}; a
// signed-in user may sync only themselves, admins and the secret key anyone.
// All the work happens in SQL, set-based: no user list ever passes through here.
import { z } from "zod";
import { requireServiceOrAdmin } from "../_shared/auth.ts";
import { literal, transaction } from "../_shared/db.ts";
import { HttpError, json, readJson, zodDetails } from "../_shared/http.ts";
import { errorFields } from "../_shared/log.ts";
import { canonicalUuid, syncProfile } from "../_shared/profile.ts";
import { defineFunction, type FunctionContext } from "../_shared/runtime.ts";
import type { Caller } from "../_shared/auth.ts";
import { parseInclude, withActivity } from "./activity.ts";

export const FN = "sync-all";

const PostBody = z.strictObject({
  dry_run: z.boolean().optional(),
  source: z.literal("cron").optional(),
});

/** Self-sync: one user, by any uuid Postgres accepts. */
const SelfSyncBody = z.strictObject({
  user_id: z.string().max(64).transform((v, ctx) => {
    const id = canonicalUuid(v);
    if (id === null) {
      ctx.addIssue({ code: "custom", message: "must be a uuid" });
      return z.NEVER;
    }
    return id;
  }),
});

/** The body of a self-sync request (an object with user_id), without consuming req. */
async function selfSyncRequest(req: Request): Promise<unknown | null> {
  if (req.method !== "POST") return null;
  try {
    const body = await readJson(req.clone(), { allowEmpty: true });
    return body !== null && typeof body === "object" && "user_id" in body ? body : null;
  } catch {
    return null; // the reconcile path answers malformed bodies
  }
}

/** POST {"user_id"}: sync_user for yourself (or anyone as admin / secret key). */
async function syncOneUser(ctx: FunctionContext, caller: Caller, body: unknown) {
  if (caller.kind === "none" || caller.kind === "anon") {
    throw new HttpError(
      401,
      "unauthorized",
      "Send your access token (Authorization: Bearer) to sync your profile.",
    );
  }
  const parsed = SelfSyncBody.safeParse(body);
  if (!parsed.success) {
    throw new HttpError(
      400,
      "invalid_input",
      "Invalid request body.",
      zodDetails(parsed.error.issues),
    );
  }
  const userId = parsed.data.user_id;
  if (caller.kind === "user" && !caller.isAdmin && caller.userId.toLowerCase() !== userId) {
    throw new HttpError(403, "forbidden", "You may sync only your own profile.");
  }
  const { result, profile } = await syncProfile(ctx, userId);
  ctx.log("info", "user synced", { caller: caller.kind, result });
  if (!profile) {
    throw new HttpError(404, "not_found", "There is no auth user with this id.");
  }
  return json(200, { user: profile });
}

interface Report {
  run_id?: number;
  source?: string;
  dry_run?: boolean;
  skipped?: boolean;
  status?: string;
  auth_users?: number;
  profiles?: number;
  inserted?: number;
  updated?: number;
  deleted?: number;
  unchanged?: number;
  errors?: number;
  error?: string | null;
  duration_ms?: number;
}

export const createSyncAllHandler = defineFunction({
  name: FN,
  methods: ["GET", "POST"],
  async handle(ctx, req) {
    const caller = await ctx.caller(req);
    const selfSync = await selfSyncRequest(req);
    if (selfSync !== null) return await syncOneUser(ctx, caller, selfSync);
    requireServiceOrAdmin(caller);

    if (req.method === "GET") {
      // ?include=runs,errors adds the dashboard's lists (activity.ts).
      const include = parseInclude(new URL(req.url));
      const [row] = await ctx.sql()<{ status: Record<string, unknown> }[]>`
        select user_sync.status() as status`;
      if (include.length === 0) return json(200, row.status);
      return json(200, await withActivity(ctx.sql(), row.status, include));
    }

    const parsed = PostBody.safeParse(await readJson(req, { allowEmpty: true }));
    if (!parsed.success) {
      throw new HttpError(
        400,
        "invalid_input",
        "Invalid request body.",
        zodDetails(parsed.error.issues),
      );
    }
    const dryRun = parsed.data.dry_run ?? false;
    if (parsed.data.source === "cron" && caller.kind !== "service") {
      throw new HttpError(
        403,
        "forbidden",
        'Only the cron job (secret key) may run as source "cron".',
      );
    }
    const source = parsed.data.source ?? (caller.kind === "service" ? "api" : "admin");

    const started = performance.now();
    ctx.log("info", "sync started", { source, dry_run: dryRun });
    let report: Report;
    try {
      // A long run must not be cut by a platform-wide statement cap: its own
      // statement_timeout, in the reconcile's transaction.
      const [[row]] = await transaction(ctx.sql(), ctx.config.reconcileStatementTimeout, [
        `select user_sync.reconcile(${literal.bool(dryRun)}, ${literal.word(source)}) as report`,
      ]);
      report = row.report as Report;
    } catch (err) {
      ctx.log("error", "sync failed", {
        source,
        dry_run: dryRun,
        duration_ms: Math.round(performance.now() - started),
        ...errorFields(err),
      });
      throw err;
    }

    const counts = {
      source,
      dry_run: dryRun,
      run_id: report.run_id,
      auth_users: report.auth_users,
      profiles: report.profiles,
      inserted: report.inserted,
      updated: report.updated,
      deleted: report.deleted,
      unchanged: report.unchanged,
      errors: report.errors,
      duration_ms: report.duration_ms ?? Math.round(performance.now() - started),
    };
    if (report.skipped) {
      ctx.log("info", "sync skipped", {
        source,
        dry_run: dryRun,
        run_id: report.run_id,
        reason: "another reconcile is in progress",
      });
      return json(200, report);
    }
    if (report.status === "failed") {
      ctx.log("error", "sync failed", { ...counts, error: report.error });
      throw new HttpError(500, "sync_failed", "The reconcile failed; nothing was changed.", report);
    }
    const synced = (report.inserted ?? 0) + (report.updated ?? 0) + (report.deleted ?? 0);
    if ((report.errors ?? 0) > 0 || report.status === "errors") {
      ctx.log("warn", "sync completed with errors", {
        ...counts,
        message: `sync completed with errors: ${synced} users synced, ${report.errors} failed`,
      });
    } else {
      ctx.log("info", "sync completed", {
        ...counts,
        message: `sync completed with ${synced} users ${dryRun ? "to sync (dry run)" : "synced"}`,
      });
    }
    return json(200, report);
  },
});
