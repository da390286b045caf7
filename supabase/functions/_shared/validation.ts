// Value rules every function shares, one definition each: user ids, profile names and
// avatar URLs (the same rules the database holds for a derived or edited value), and
// Postgres durations (what the configuration accepts is exactly what db.ts will send).
import { z } from "zod";

/**
 * A uuid as Postgres prints it, whatever its version and variant. Postgres and Auth
 * accept any 128-bit id (imported and seeded users, e.g. 11111111-1111-1111-1111-
 * 111111111111), which zod's z.uuid() (RFC 4122 only) would refuse.
 */
export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const Uuid = z.string().regex(UUID_PATTERN, "must be a uuid");

// The characters public.users' check users_name_clean refuses in a name: control
// characters, zero-width and bidi-override characters, line and paragraph separators,
// the BOM; and whitespace at either end.
const NAME_FORBIDDEN =
  // deno-lint-ignore no-control-regex -- matching control characters is the point
  /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff]/;
const NAME_EDGE_SPACE =
  /^[ \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]|[ \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]$/;

/** Longest name the database ever stores (user_sync.config.name_max_length is at most this). */
export const NAME_MAX_LENGTH = 1000;

/**
 * A display name: surrounding whitespace is trimmed (as String.prototype.trim does);
 * a forbidden character anywhere, even one trim would remove (a BOM), is refused.
 */
export const ProfileName = z.string()
  .refine(
    (v) => !NAME_FORBIDDEN.test(v),
    "must not contain control, zero-width, bidi-override or separator characters",
  )
  .trim()
  .min(1, "must not be blank")
  .max(NAME_MAX_LENGTH)
  .refine((v) => !NAME_EDGE_SPACE.test(v), "must not start or end with whitespace");

/** An avatar URL: http(s), no whitespace, control characters, quotes or angle brackets. */
export const AvatarUrl = z.string().max(2048).refine((v) => {
  if (!/^https?:\/\/[^\s\p{Cc}"'<>]+$/iu.test(v)) return false;
  try {
    const u = new URL(v);
    return u.protocol === "http:" || u.protocol === "https:";
  } catch {
    return false;
  }
}, "must be an http(s) URL without spaces, quotes or angle brackets");

const DURATION = /^(\d{1,10})\s*(ms|s|min|h)?$/;
const UNIT_MS = { ms: 1, s: 1000, min: 60_000, h: 3_600_000 } as const;
/** Largest statement_timeout Postgres accepts (an int of milliseconds). */
const MAX_TIMEOUT_MS = 2_147_483_647;

/**
 * A statement_timeout: whole milliseconds, or a whole number of ms, s, min or h, at
 * most 2147483647 ms. Answers the normalized text (`10min`), or null when Postgres
 * would refuse it.
 */
export function postgresDuration(value: string | number): string | null {
  const m = DURATION.exec(String(value).trim());
  if (!m) return null;
  const unit = (m[2] ?? "ms") as keyof typeof UNIT_MS;
  if (Number(m[1]) * UNIT_MS[unit] > MAX_TIMEOUT_MS) return null;
  return `${Number(m[1])}${m[2] ?? ""}`;
}
