// One error type for everything the client does: the functions' JSON errors
// ({"error":{"code","message","details"?}}) and the Data API's (PostgREST) errors,
// mapped to the same shape, with the HTTP status (0 when the request never got an answer).

/** The body every failure of User Sync carries (SPEC §3). */
export interface UserSyncErrorBody {
  error: { code: string; message: string; details?: unknown };
}

export class UserSyncError extends Error {
  override readonly name = "UserSyncError";
  /** HTTP status of the answer; 0 when there was none (network failure). */
  readonly status: number;
  /** Stable machine-readable code, e.g. `forbidden`, `not_found`, `invalid_input`. */
  readonly code: string;
  readonly details?: unknown;

  constructor(status: number, body: UserSyncErrorBody) {
    super(body.error.message);
    this.status = status;
    this.code = body.error.code;
    this.details = body.error.details;
  }

  /** The `{ error: { code, message, details } }` body. */
  get body(): UserSyncErrorBody {
    const error: UserSyncErrorBody["error"] = { code: this.code, message: this.message };
    if (this.details !== undefined) error.details = this.details;
    return { error };
  }

  toJSON(): UserSyncErrorBody & { status: number } {
    return { status: this.status, ...this.body };
  }
}

/** The parts of a supabase-js PostgrestError the mapping reads. */
interface PostgrestErrorLike {
  code?: string;
  message?: string;
  details?: string | null;
  hint?: string | null;
}

/** PostgreSQL / PostgREST codes the client maps to our codes (others: `database_error`). */
const POSTGREST_CODES: Record<string, { code: string; status?: number }> = {
  "42501": { code: "forbidden", status: 403 }, // insufficient_privilege (grants, RLS, role guard)
  PGRST116: { code: "not_found", status: 404 }, // .single() found no row (or RLS hid it)
  "23514": { code: "invalid_input", status: 400 }, // check_violation (name, avatar_url rules)
  "23503": { code: "invalid_input", status: 400 }, // foreign_key_violation (unknown role)
  "22P02": { code: "invalid_input", status: 400 }, // invalid_text_representation (bad uuid)
  "22001": { code: "invalid_input", status: 400 }, // string_data_right_truncation
  PGRST204: { code: "invalid_input", status: 400 }, // unknown column
  PGRST301: { code: "invalid_token", status: 401 }, // JWT rejected
  PGRST303: { code: "invalid_token", status: 401 }, // JWT expired
};

/** A Data API (PostgREST) error as a UserSyncError; details keep PostgREST's fields. */
export function fromPostgrestError(status: number, err: PostgrestErrorLike): UserSyncError {
  const known = err.code ? POSTGREST_CODES[err.code] : undefined;
  // Our statuses for the codes we know (PostgREST answers "no row" 406 and a foreign-key
  // violation 409; to the caller they are a 404 and a 400 like ours); 42501 keeps
  // PostgREST's 401 (anon) / 403 (signed in).
  const httpStatus = known?.status && err.code !== "42501"
    ? known.status
    : status > 0
    ? status
    : (known?.status ?? 0);
  const details: Record<string, unknown> = { postgrest_code: err.code ?? null };
  if (err.details) details.details = err.details;
  if (err.hint) details.hint = err.hint;
  return new UserSyncError(httpStatus, {
    error: {
      code: known?.code ?? (httpStatus === 0 ? "network_error" : "database_error"),
      message: err.message || "The Data API request failed.",
      details,
    },
  });
}

/** Reads a function's error answer; a body that is not ours still yields a UserSyncError. */
export async function fromFunctionResponse(res: Response): Promise<UserSyncError> {
  let body: unknown = null;
  try {
    body = await res.clone().json();
  } catch {
    // not JSON: fall through
  }
  const error = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } })
    ?.error;
  if (error && typeof error.code === "string" && typeof error.message === "string") {
    return new UserSyncError(res.status, {
      error: {
        code: error.code,
        message: error.message,
        ...(error.details !== undefined ? { details: error.details } : {}),
      },
    });
  }
  return new UserSyncError(res.status, {
    error: { code: "http_error", message: `The function answered HTTP ${res.status}.` },
  });
}
