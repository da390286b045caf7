// sync-all GET ?include=runs,errors,heal,health: the recent runs and the open errors,
// for the admin dashboard, and the parts of status() that cost no pass over the users:
// `heal` (the unfinished pass's progress: what a progress bar polls every second) and
// `health` (what a monitor polls). user_sync is never exposed through the Data API, so
// the dashboard reads these here, beside status(), with the same callers (secret key,
// admins). `&status=false` answers them alone, at once at any size, while status()'s
// counts are a scan of every user (about 4 s at 10M).
import type { Sql } from "../_shared/db.ts";
import { HttpError } from "../_shared/http.ts";

/** Parts a GET may add to status(), by name. */
export const INCLUDE_PARTS = ["runs", "errors", "heal", "health"] as const;
export type IncludePart = (typeof INCLUDE_PARTS)[number];

/** How many rows each list holds (newest first). */
export const ACTIVITY_LIMIT = 50;

/** What a GET asks for: the lists of `?include=`, and status() unless `?status=false`. */
export interface ActivityQuery {
  include: IncludePart[];
  /** status() costs a scan of every user (4 s at 10M); the other parts are instant. */
  withStatus: boolean;
}

export function parseActivityQuery(url: URL): ActivityQuery {
  const include = parseInclude(url);
  const status = url.searchParams.get("status");
  if (status !== null && status !== "true" && status !== "false") {
    throw new HttpError(400, "invalid_input", "status must be true or false.", { status });
  }
  if (status === "false" && include.length === 0) {
    throw new HttpError(
      400,
      "invalid_input",
      `status=false needs include= one or more of ${INCLUDE_PARTS.join(", ")}.`,
    );
  }
  return { include, withStatus: status !== "false" };
}

/** The lists named by `?include=` (comma-separated); unknown names are a 400. */
export function parseInclude(url: URL): IncludePart[] {
  const raw = url.searchParams.getAll("include").flatMap((v) => v.split(","));
  const names = raw.map((v) => v.trim()).filter((v) => v !== "");
  const unknown = names.filter((n) => !(INCLUDE_PARTS as readonly string[]).includes(n));
  if (unknown.length > 0) {
    throw new HttpError(400, "invalid_input", "Unknown part in include.", {
      include: { unknown, allowed: INCLUDE_PARTS },
    });
  }
  return [...new Set(names as IncludePart[])];
}

/** The recent runs (JSON numbers, not bigint strings) (dry, skipped and failed ones too), newest first. */
export async function recentRuns(sql: Sql): Promise<unknown[]> {
  const [{ list }] = await sql<{ list: unknown[] }[]>`
    select coalesce(jsonb_agg(to_jsonb(x) order by x.run_id desc), '[]'::jsonb) as list
    from (
      select r.id as run_id, r.source, r.dry_run, r.status, r.started_at, r.finished_at,
             r.duration_ms, r.auth_users, r.profiles, r.inserted, r.updated, r.deleted,
             r.unchanged, r.errors, r.error
      from user_sync.runs r
      order by r.id desc
      limit ${ACTIVITY_LIMIT}
    ) x`;
  return list;
}

/** The open (unresolved) errors, newest first, with the user's email when known. */
export async function openErrors(sql: Sql): Promise<unknown[]> {
  const [{ list }] = await sql<{ list: unknown[] }[]>`
    select coalesce(jsonb_agg(to_jsonb(x) order by x.occurred_at desc, x.id desc), '[]'::jsonb) as list
    from (
      select e.id, e.user_id, u.email, e.source, e.sqlstate, e.message, e.occurred_at, e.run_id
      from user_sync.errors e
      left join auth.users u on u.id = e.user_id
      where e.resolved_at is null
      order by e.occurred_at desc, e.id desc
      limit ${ACTIVITY_LIMIT}
    ) x`;
  return list;
}

/** user_sync.heal_progress() and user_sync.health(): status()'s cheap parts. */
async function cheapStatusPart(sql: Sql, part: "heal" | "health"): Promise<unknown> {
  const [{ value }] = part === "heal"
    ? await sql<{ value: unknown }[]>`select user_sync.heal_progress() as value`
    : await sql<{ value: unknown }[]>`select user_sync.health() as value`;
  return value;
}

/** status() (or nothing, with status=false) plus the parts asked for. */
export async function withActivity(
  sql: Sql,
  status: Record<string, unknown>,
  include: IncludePart[],
): Promise<Record<string, unknown>> {
  const out = { ...status };
  if (include.includes("runs")) out.runs = await recentRuns(sql);
  if (include.includes("errors")) out.errors = await openErrors(sql);
  // status() answers these already; read them apart only without it
  for (const part of ["heal", "health"] as const) {
    if (include.includes(part) && !(part in status)) out[part] = await cheapStatusPart(sql, part);
  }
  return out;
}
