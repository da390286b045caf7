// One user's profile, made to match its auth user now: user_sync.sync_user, then the
// row, in one short transaction. Used by create-user (after Auth created the user) and
// by sync-all's self-sync ({"user_id"}).
import { literal, transaction } from "./db.ts";
import type { FunctionContext } from "./runtime.ts";

/** sync_user's result (`inserted`, `updated`, `unchanged`, `deleted`) and the profile, if any. */
export async function syncProfile(
  ctx: FunctionContext,
  userId: string,
): Promise<{ result: string; profile: Record<string, unknown> | undefined }> {
  const [[synced], [profile]] = await transaction(ctx.sql(), ctx.config.statementTimeoutMs, [
    `select user_sync.sync_user(${literal.uuid(userId)}) as result`,
    `select * from public.users where id = ${literal.uuid(userId)}`,
  ]);
  return { result: synced?.result as string, profile };
}

// What Postgres's uuid input accepts: 32 hex digits, upper or lower case, a hyphen
// allowed after any group of four, optionally in braces (not only RFC 4122 ids).
const PG_UUID = /^(?:\{(?=.*\}$))?[0-9a-f]{4}(?:-?[0-9a-f]{4}){7}(?:(?<=\{.*)\})?$/i;

/** A uuid in any form Postgres accepts, as its canonical text; null when it is not one. */
export function canonicalUuid(value: string): string | null {
  if (!PG_UUID.test(value)) return null;
  const hex = value.replace(/[{}-]/g, "").toLowerCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${
    hex.slice(20)
  }`;
}
