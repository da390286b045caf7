// HTTP plumbing shared by the functions: the one JSON error shape, JSON answers,
// CORS, request bodies (1 MiB limit, JSON only) and their validation.
import type { z } from "zod";

export const MAX_BODY_BYTES = 1024 * 1024;

export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}

/** An answer other than success. Thrown anywhere, turned into JSON by the wrapper. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = "HttpError";
  }
}

export function json(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json; charset=utf-8", ...headers },
  });
}

export function errorBody(code: string, message: string, details?: unknown): ErrorBody {
  return details === undefined
    ? { error: { code, message } }
    : { error: { code, message, details } };
}

export function errorResponse(err: HttpError): Response {
  return json(err.status, errorBody(err.code, err.message, err.details), err.headers);
}

// ---------------------------------------------------------------------------
// CORS
// ---------------------------------------------------------------------------
const ALLOWED_HEADERS =
  "authorization, x-client-info, apikey, content-type, x-supabase-api-version, x-region";

export function corsHeaders(
  req: Request,
  origins: "*" | string[],
  methods: readonly string[],
): Record<string, string> {
  const headers: Record<string, string> = {
    "Access-Control-Allow-Methods": [...methods, "OPTIONS"].join(", "),
    "Access-Control-Allow-Headers": ALLOWED_HEADERS,
    "Access-Control-Max-Age": "86400",
  };
  if (origins === "*") {
    headers["Access-Control-Allow-Origin"] = "*";
  } else {
    const origin = req.headers.get("origin");
    if (origin && origins.includes(origin)) headers["Access-Control-Allow-Origin"] = origin;
    headers["Vary"] = "Origin";
  }
  return headers;
}

// ---------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------
function tooLarge(): HttpError {
  return new HttpError(
    413,
    "payload_too_large",
    `Request body exceeds ${MAX_BODY_BYTES} bytes (1 MiB).`,
  );
}

/** Rejects a declared Content-Length over the limit before anything else is done. */
export function checkDeclaredLength(req: Request, limit = MAX_BODY_BYTES): void {
  const declared = req.headers.get("content-length");
  if (declared !== null) {
    const n = Number(declared);
    if (!Number.isFinite(n) || n < 0) {
      throw new HttpError(400, "invalid_request", "Invalid Content-Length header.");
    }
    if (n > limit) throw tooLarge();
  }
}

/** Reads the raw body, counting streamed bytes (a chunked body has no Content-Length). */
export async function readBodyBytes(req: Request, limit = MAX_BODY_BYTES): Promise<Uint8Array> {
  checkDeclaredLength(req, limit);
  if (!req.body) return new Uint8Array(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > limit) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

function isJsonContentType(value: string | null): boolean {
  if (!value) return false;
  const media = value.split(";")[0].trim().toLowerCase();
  return media === "application/json" || /^application\/[\w.+-]+\+json$/.test(media);
}

/**
 * The body as text, after the media-type (415) and size (413) checks. `allowEmpty`:
 * an empty body without a Content-Type is accepted and answered as "".
 */
export async function readJsonText(req: Request, { allowEmpty = false } = {}): Promise<string> {
  checkDeclaredLength(req);
  const contentType = req.headers.get("content-type");
  const declaredEmpty = req.headers.get("content-length") === "0" || req.body === null;
  if (!isJsonContentType(contentType)) {
    if (allowEmpty && !contentType && declaredEmpty) return "";
    if (allowEmpty && !contentType) {
      const bytes = await readBodyBytes(req);
      if (bytes.byteLength === 0) return "";
    }
    throw new HttpError(
      415,
      "unsupported_media_type",
      "Send the body as JSON (Content-Type: application/json).",
    );
  }
  const bytes = await readBodyBytes(req);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new HttpError(400, "invalid_json", "The body is not valid UTF-8.");
  }
}

export function parseJson(text: string, { allowEmpty = false } = {}): unknown {
  if (text.trim() === "") {
    if (allowEmpty) return {};
    throw new HttpError(400, "invalid_json", "The body is empty; send a JSON object.");
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, "invalid_json", "The body is not valid JSON.");
  }
}

/** Reads, size-checks and parses a JSON body. */
export async function readJson(
  req: Request,
  options: { allowEmpty?: boolean } = {},
): Promise<unknown> {
  return parseJson(await readJsonText(req, options), options);
}

/** zod issues as `details`: where and what, never the offending value. */
export function zodDetails(
  issues: readonly { path: readonly PropertyKey[]; message: string; code: string }[],
) {
  return issues.map((i) => ({
    path: i.path.map((p) => String(p)).join("."),
    code: i.code,
    message: i.message,
  }));
}

/** Validates input with a zod schema: the parsed value, or a 400 invalid_input with zod's details. */
export function parseInput<T>(
  schema: z.ZodType<T>,
  value: unknown,
  message = "Invalid request body.",
): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new HttpError(400, "invalid_input", message, zodDetails(parsed.error.issues));
  }
  return parsed.data;
}
