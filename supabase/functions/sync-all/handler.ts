// sync-all: POST drives bounded user_sync.reconcile() calls (each its own short
// transaction) until the pass is complete or the request's budget is spent, and
// answers the summed report; the next POST (the cron job's next run) continues an
// unfinished pass. GET answers user_sync.status(). Callers: the cron job (secret key)
// and admins. Self-sync: POST {"user_id"} syncs that one user and answers
// {user: <profile>}; a signed-in user may sync only themselves, admins and the secret
// key anyone. All the work happens in SQL, set-based: no user list passes through here.
import { z } from "zod";
import { requireServiceOrAdmin } from "../_shared/auth.ts";
import { literal, transaction } from "../_shared/db.ts";
import { HttpError, json, parseInput, readJson } from "../_shared/http.ts";
import { errorFields } from "../_shared/log.ts";
import { canonicalUuid, syncProfile } from "../_shared/profile.ts";
import { defineFunction, type FunctionContext } from "../_shared/runtime.ts";
import { driveHeal, type HealReport, type ReconcileReport } from "../_shared/heal.ts";
import type { Caller } from "../_shared/auth.ts";
import { parseActivityQuery, withActivity } from "./activity.ts";

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

/** Is this POST body a self-sync request (an object with user_id)? */
function isSelfSync(body: unknown): boolean {
  return body !== null && typeof body === "object" && !Array.isArray(body) && "user_id" in body;
}

/**
 * A plain signed-in user may only self-sync: their body is read (a body that is not
 * a self-sync request, or not readable, is refused as before: 403).
 */
async function plainUserSelfSync(req: Request, caller: Caller): Promise<unknown> {
  let body: unknown = null;
  try {
    body = await readJson(req, { allowEmpty: true });
  } catch {
    // refused below
  }
  if (!isSelfSync(body)) requireServiceOrAdmin(caller); // throws 403
  return body;
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
  const userId = parseInput(SelfSyncBody, body).user_id;
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

export const createSyncAllHandler = defineFunction({
  name: FN,
  methods: ["GET", "POST"],
  async handle(ctx, req) {
    const caller = await ctx.caller(req);
    if (req.method === "POST" && caller.kind === "user" && !caller.isAdmin) {
      return await syncOneUser(ctx, caller, await plainUserSelfSync(req, caller));
    }
    requireServiceOrAdmin(caller);

    if (req.method === "GET") {
      // ?include=runs,errors,heal,health[&status=false]: the dashboard's lists and status()'s cheap parts (activity.ts).
      const { include, withStatus } = parseActivityQuery(new URL(req.url));
      if (!withStatus) return json(200, await withActivity(ctx.sql(), {}, include));
      const [row] = await ctx.sql()<{ status: Record<string, unknown> }[]>`
        select user_sync.status() as status`;
      if (include.length === 0) return json(200, row.status);
      return json(200, await withActivity(ctx.sql(), row.status, include));
    }

    const body = await readJson(req, { allowEmpty: true });
    if (isSelfSync(body)) return await syncOneUser(ctx, caller, body);
    const input = parseInput(PostBody, body);
    const dryRun = input.dry_run ?? false;
    if (input.source === "cron" && caller.kind !== "service") {
      throw new HttpError(
        403,
        "forbidden",
        'Only the cron job (secret key) may run as source "cron".',
      );
    }
    const source = input.source ?? (caller.kind === "service" ? "api" : "admin");

    const started = performance.now();
    ctx.log("info", "sync started", { source, dry_run: dryRun });
    let report: HealReport;
    try {
      report = await driveHeal({
        budgetMs: ctx.config.syncAllBudgetMs,
        callMs: ctx.config.reconcileCallMs,
        // Each call its own transaction (no lock of ours outlives it), with its own
        // statement_timeout against a platform-wide cap.
        call: async (maxMs) => {
          const [[row]] = await transaction(ctx.sql(), ctx.config.reconcileStatementTimeout, [
            `select user_sync.reconcile(${literal.bool(dryRun)}, ${literal.word(source)}, ${
              literal.int(maxMs)
            }) as report`,
          ]);
          return row.report as ReconcileReport;
        },
      });
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
      complete: report.complete,
      calls: report.calls,
      examined: report.progress.examined,
      total: report.progress.total,
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
      throw new HttpError(
        500,
        "sync_failed",
        "The reconcile failed; its last call changed nothing (earlier calls of this request are kept and the next run continues).",
        report,
      );
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
        message: `sync ${
          report.complete ? "completed" : "continues next run"
        } with ${synced} users ${dryRun ? "to sync (dry run)" : "synced"}`,
      });
    }
    return json(200, report);
  },
});
