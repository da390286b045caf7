// The frame every function runs in: routing (404), CORS preflight, methods (405),
// configuration (read once, validated), the database pool, caller identification,
// the mapping of failures to the one JSON error shape, and one log line per request.
import type { JWTVerifyGetKey } from "jose";
import {
  type AuthDeps,
  AuthUnavailableError,
  type Caller,
  createJwksGetter,
  identifyCaller,
} from "./auth.ts";
import { type Config, ConfigError, type EnvInput, loadConfig } from "./config.ts";
import { createSql, isDbUnavailable, type Sql } from "./db.ts";
import { checkDeclaredLength, corsHeaders, errorResponse, HttpError, json } from "./http.ts";
import { errorFields, log } from "./log.ts";

export interface HandlerOptions {
  /** Environment to read instead of Deno.env (tests). */
  env?: EnvInput;
  /** fetch used to reach Supabase Auth (tests inject faults). */
  fetch?: typeof fetch;
  /** Clock in ms (tests). */
  now?: () => number;
}

export type Handler = ((req: Request) => Promise<Response>) & {
  /** Closes the database pool (tests, shutdown). */
  close(): Promise<void>;
};

export interface FunctionContext {
  fn: string;
  config: Config;
  sql(): Sql;
  fetch: typeof fetch;
  now(): number;
  caller(req: Request): Promise<Caller>;
  log(
    level: "debug" | "info" | "warn" | "error",
    event: string,
    fields?: Record<string, unknown>,
  ): void;
}

export interface FunctionDefinition {
  name: string;
  methods: readonly ("GET" | "POST")[];
  handle(ctx: FunctionContext, req: Request): Promise<Response>;
}

/** Paths a function answers: `/`, `/<name>`, `/functions/v1/<name>` (with optional `/`). */
function routeMatches(pathname: string, name: string): boolean {
  const p = pathname.replace(/\/+$/, "");
  return p === "" || p === `/${name}` || p === `/functions/v1/${name}`;
}

/** Builds a function's handler; configuration and the pool are created on first use. */
export function defineFunction(def: FunctionDefinition): (options?: HandlerOptions) => Handler {
  return (options: HandlerOptions = {}) => {
    const fn = def.name;
    const fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
    const now = options.now ?? (() => Date.now());
    let config: Config | undefined;
    let configError: ConfigError | undefined;
    let sql: Sql | undefined;
    let jwks: JWTVerifyGetKey | undefined;

    const getConfig = (): Config => {
      if (config) return config;
      if (configError) throw configError;
      try {
        config = loadConfig(options.env);
        return config;
      } catch (err) {
        if (err instanceof ConfigError) configError = err;
        throw err;
      }
    };
    const getSql = () => (sql ??= createSql(getConfig().dbUrl, fn));
    const ctxLog: FunctionContext["log"] = (level, event, fields = {}) =>
      log(level, fn, event, fields);

    const handler = (async (req: Request): Promise<Response> => {
      const started = performance.now();
      const url = new URL(req.url);
      let callerKind: Caller["kind"] | undefined;
      let cors: Record<string, string> = corsHeaders(req, "*", def.methods);
      let res: Response;
      try {
        if (!routeMatches(url.pathname, fn)) {
          throw new HttpError(404, "not_found", `No route ${url.pathname} in ${fn}.`);
        }
        const origins = (() => {
          try {
            return getConfig().corsOrigins;
          } catch {
            return "*" as const;
          }
        })();
        cors = corsHeaders(req, origins, def.methods);
        if (req.method === "OPTIONS") {
          res = json(200, { ok: true });
        } else if (!(def.methods as readonly string[]).includes(req.method)) {
          throw new HttpError(
            405,
            "method_not_allowed",
            `Use ${def.methods.join(" or ")}.`,
            undefined,
            {
              Allow: [...def.methods, "OPTIONS"].join(", "),
            },
          );
        } else {
          checkDeclaredLength(req);
          const cfg = getConfig();
          const authDeps: AuthDeps = {
            config: cfg,
            sql: getSql,
            fetch: fetchImpl,
            jwks: () => (jwks ??= createJwksGetter(cfg, fetchImpl)),
          };
          let cached: Promise<Caller> | undefined;
          const ctx: FunctionContext = {
            fn,
            config: cfg,
            sql: getSql,
            fetch: fetchImpl,
            now,
            caller: (r) => (cached ??= identifyCaller(r, authDeps).then((c) => {
              callerKind = c.kind;
              return c;
            })),
            log: ctxLog,
          };
          res = await def.handle(ctx, req);
        }
      } catch (err) {
        res = toErrorResponse(err, fn);
      }
      // cancel an unread body so the connection is not left hanging
      if (req.body && !req.bodyUsed) await req.body.cancel().catch(() => {});
      const headers = new Headers(res.headers);
      for (const [k, v] of Object.entries(cors)) headers.set(k, v);
      log(res.status >= 500 ? "error" : res.status >= 400 ? "warn" : "info", fn, "request", {
        method: req.method,
        path: url.pathname,
        status: res.status,
        caller: callerKind,
        duration_ms: Math.round(performance.now() - started),
      });
      return new Response(res.body, { status: res.status, headers });
    }) as Handler;

    handler.close = async () => {
      const s = sql;
      sql = undefined;
      if (s) await s.end({ timeout: 2 }).catch(() => {});
    };
    return handler;
  };
}

/** Any failure → the JSON error shape; unknown failures never show their details. */
export function toErrorResponse(err: unknown, fn: string): Response {
  if (err instanceof HttpError) return errorResponse(err);
  if (err instanceof ConfigError) {
    // The log names the variables (never their values); the caller, who may be anyone
    // (nobody can be authenticated without the configuration), learns nothing of them.
    log("error", fn, "configuration invalid", { message: err.message, variables: err.variables });
    return errorResponse(
      new HttpError(
        503,
        "misconfigured",
        "The function is not configured correctly; its log names the setting to fix.",
      ),
    );
  }
  if (err instanceof AuthUnavailableError) {
    log("error", fn, "auth unavailable", errorFields(err));
    return errorResponse(
      new HttpError(503, "auth_unavailable", "Supabase Auth is unreachable; try again later."),
    );
  }
  if (isDbUnavailable(err)) {
    log("error", fn, "database unavailable", errorFields(err));
    return errorResponse(
      new HttpError(
        503,
        "database_unavailable",
        "The database is unreachable or busy; try again later.",
      ),
    );
  }
  log("error", fn, "internal error", errorFields(err));
  return errorResponse(new HttpError(500, "internal_error", "Internal error."));
}

/** Entry point helper: serve only when run as the main module (or in Supabase's Edge Runtime). */
export function serveIfMain(importMeta: ImportMeta, handler: Handler, fn: string): void {
  const inEdgeRuntime = "EdgeRuntime" in globalThis;
  if (!importMeta.main && !inEdgeRuntime) return;
  try {
    loadConfig();
  } catch (err) {
    // a clear startup error; requests are answered 503 `misconfigured` until fixed
    if (err instanceof ConfigError) {
      log("error", fn, "configuration invalid", { message: err.message, variables: err.variables });
    } else throw err;
  }
  Deno.serve(handler);
}
