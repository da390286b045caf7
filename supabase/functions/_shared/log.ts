// One JSON line per event: {level, fn, event, ...fields}. The only place that writes
// logs. Fields are scrubbed so that no key, token, password or connection string
// can reach a log line, even by mistake (an error message quoting a URL, say).

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogSink = (line: string, level: LogLevel) => void;

const defaultSink: LogSink = (line, level) => {
  if (level === "error" || level === "warn") console.error(line);
  else console.log(line);
};

let sink: LogSink = defaultSink;

/** Replaces where log lines go (tests capture them); returns the previous sink. */
export function setLogSink(next: LogSink | null): LogSink {
  const previous = sink;
  sink = next ?? defaultSink;
  return previous;
}

const SENSITIVE_KEY = /pass(word)?|secret|token|api_?key|authorization|jwt|cookie|credential/i;
const MAX_STRING = 500;

/** Removes anything that looks like a credential from a free-text string. */
export function scrub(text: string): string {
  const cleaned = text
    // JWTs (service_role/anon keys, access tokens)
    .replace(/eyJ[\w-]*\.[\w-]*\.[\w-]*/g, "[jwt]")
    // new-style API keys
    .replace(/sb_(secret|publishable)_[\w-]+/g, "[key]")
    // Standard Webhooks secrets
    .replace(/whsec_[A-Za-z0-9+/=]+/g, "[secret]")
    // passwords inside connection strings / URLs
    .replace(/([a-z][a-z0-9+.-]*:\/\/[^\s:/@]+:)[^\s@]+@/gi, "$1[redacted]@")
    // Bearer credentials
    .replace(/(bearer\s+)\S+/gi, "$1[redacted]");
  return cleaned.length > MAX_STRING ? `${cleaned.slice(0, MAX_STRING)}…` : cleaned;
}

function clean(value: unknown, depth: number): unknown {
  if (value === null || value === undefined) return value;
  if (typeof value === "string") return scrub(value);
  if (typeof value === "number" || typeof value === "boolean") return value;
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Date) return value.toISOString();
  if (depth > 4) return "[…]";
  if (Array.isArray(value)) return value.slice(0, 50).map((v) => clean(v, depth + 1));
  if (typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      out[k] = SENSITIVE_KEY.test(k) ? "[redacted]" : clean(v, depth + 1);
    }
    return out;
  }
  return String(value);
}

/** Writes one structured log line. */
export function log(
  level: LogLevel,
  fn: string,
  event: string,
  fields: Record<string, unknown> = {},
): void {
  const record = { level, fn, event, ...(clean(fields, 0) as Record<string, unknown>) };
  let line: string;
  try {
    line = JSON.stringify(record);
  } catch {
    line = JSON.stringify({ level, fn, event, note: "unserialisable fields dropped" });
  }
  try {
    sink(line, level);
  } catch {
    // logging must never break a request
  }
}

/** The loggable part of an error: its code and a scrubbed message, never a stack. */
export function errorFields(err: unknown): Record<string, unknown> {
  if (err instanceof Error) {
    const e = err as Error & { code?: unknown; status?: unknown };
    const out: Record<string, unknown> = { error: scrub(e.message || e.name) };
    if (typeof e.code === "string" || typeof e.code === "number") out.error_code = e.code;
    if (typeof e.status === "number") out.error_status = e.status;
    return out;
  }
  return { error: scrub(String(err)) };
}
