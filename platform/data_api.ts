// LOCAL PLATFORM (development and tests only; never deployed): a stand-in for the hosted platform.
// A stand-in for the Data API (PostgREST behind /rest/v1), serving the part of it that
// @user-sync/client and our tests use, driven by the real supabase-js client:
//   GET|HEAD /rest/v1/<table>   select=<columns> (plain names, `alias:column`, `*`);
//                               filters eq neq gt gte lt lte like ilike is in, `not.`,
//                               or=(...) / and=(...) (nested); order=col.asc|desc.nullsfirst|
//                               nullslast; limit/offset and the Range header; Prefer
//                               count=exact|planned|estimated; Accept vnd.pgrst.object+json
//   PATCH /rest/v1/<table>      the same filters; Prefer return=representation|minimal
//   POST /rest/v1/rpc/<fn>      named arguments in a JSON object
// Each request runs as PostgREST runs it: one transaction on an `authenticator`
// connection, `set local role` to the JWT's role (verified with the project's JWT secret
// or the Auth stand-in's JWKS; the anon key → anon), the role's own settings
// (statement_timeout), the claims in `request.jwt.claims`: the real RLS policies and
// grants decide. Answers (JSON built in SQL, Content-Range, errors {code, details, hint,
// message} with PostgREST's status mapping) are shaped like PostgREST's so supabase-js
// behaves as against the real thing. Anything else is answered 501 naming the feature,
// never with a wrong answer.
import postgres from "postgres";
import { createLocalJWKSet, decodeProtectedHeader, type JWK, type JWTPayload, jwtVerify } from "jose";
import { withCredentials } from "./local.ts";

type Sql = postgres.Sql<Record<string, never>>;
type TxSql = postgres.TransactionSql<Record<string, never>>;

export interface DataApiOptions {
  /** Database URL of `postgres`; the stand-in connects as `authenticator` on the same server. */
  dbUrl: string;
  jwtSecret: string;
  /** The API keys the gateway accepts in the `apikey` header. */
  apiKeys: () => string[];
  /** Public keys of asymmetric user tokens (the Auth stand-in's JWKS). */
  jwks?: () => { keys: JWK[] };
  /** Rows a request may answer at most (Supabase's [api] max_rows, default 1000). */
  maxRows?: number;
}

const API_ROLES = new Set(["anon", "authenticated", "service_role"]);
const SCHEMA = "public";
const OBJECT_MEDIA = "application/vnd.pgrst.object+json";
const CORS_HEADERS = {
  "access-control-allow-origin": "*",
  "access-control-expose-headers": "Content-Range, Range",
};

/** A PostgREST-shaped error answer. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string | null,
    message: string,
    readonly details: string | null = null,
    readonly hint: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** 501: a PostgREST feature this stand-in does not serve (never a wrong answer). */
function unsupported(feature: string): ApiError {
  return new ApiError(
    501,
    "PGRST501",
    `Not supported by the local Data API stand-in: ${feature}.`,
    null,
    "The stand-in serves the part of PostgREST that @user-sync/client uses; run against a Supabase project for the rest.",
  );
}

function respond(
  status: number,
  body: string | null,
  headers: Record<string, string> = {},
): Response {
  return new Response(body, {
    status,
    headers: {
      ...CORS_HEADERS,
      ...(body !== null ? { "content-type": "application/json; charset=utf-8" } : {}),
      ...headers,
    },
  });
}

function errorResponse(err: ApiError): Response {
  return respond(
    err.status,
    JSON.stringify({ code: err.code, details: err.details, hint: err.hint, message: err.message }),
    err.headers,
  );
}

/** PostgREST's mapping of SQLSTATE to HTTP status. */
export function statusForSqlState(state: string, role: string): number {
  if (state === "42501") return role === "anon" ? 401 : 403;
  if (state === "42883" || state === "42P01") return 404;
  if (state === "23503" || state === "23505") return 409;
  if (state === "25006") return 405;
  if (state === "P0001") return 400;
  if (state === "42P17") return 500;
  const cls = state.slice(0, 2);
  if (cls === "08" || cls === "53") return 503;
  if (cls === "0L" || cls === "0P" || cls === "28") return 403;
  if (["09", "25", "2D", "38", "39", "3B", "40", "54", "55", "57", "58", "XX"].includes(cls)) {
    return 500;
  }
  if (cls === "P0") return 500;
  return 400;
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

// ---------------------------------------------------------------------------
// Query grammar (the subset): filters, logic trees, select, order, ranges, Prefer
// ---------------------------------------------------------------------------

/** Splits on `sep` outside double quotes and parentheses. */
function splitTopLevel(text: string, sep = ","): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let cur = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      cur += c;
      if (c === "\\" && i + 1 < text.length) cur += text[++i];
      else if (c === '"') quoted = false;
      continue;
    }
    if (c === '"') quoted = true;
    else if (c === "(") depth++;
    else if (c === ")") depth--;
    if (c === sep && depth === 0) {
      out.push(cur);
      cur = "";
    } else {
      cur += c;
    }
  }
  if (quoted || depth !== 0) {
    throw new ApiError(400, "PGRST100", `"failed to parse filter (${text})"`, "unbalanced quotes or parentheses");
  }
  out.push(cur);
  return out;
}

/** A value of a logic tree or `in` list: `"..."` unquoted (backslash escapes), else as is. */
function unquote(value: string): string {
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
    return value.slice(1, -1).replace(/\\(.)/g, "$1");
  }
  return value;
}

const COMPARISONS: Record<string, string> = {
  eq: "=",
  neq: "<>",
  gt: ">",
  gte: ">=",
  lt: "<",
  lte: "<=",
  like: "like",
  ilike: "ilike",
};
const KNOWN_UNSUPPORTED_OPS = new Set([
  "match",
  "imatch",
  "fts",
  "plfts",
  "phfts",
  "wfts",
  "cs",
  "cd",
  "ov",
  "sl",
  "sr",
  "nxl",
  "nxr",
  "adj",
  "isdistinct",
]);

/** Builds SQL with positional parameters ($1, $2, ...). */
class SqlBuilder {
  readonly params: (string | null)[] = [];
  constructor(readonly columns: Set<string>) {}

  param(value: string | null): string {
    this.params.push(value);
    return `$${this.params.length}`;
  }

  column(name: string): string {
    if (/->|::|[()]/.test(name)) throw unsupported(`JSON paths, casts or embedding in "${name}"`);
    if (!this.columns.has(name)) {
      throw new ApiError(400, "42703", `column ${SCHEMA}.${name} does not exist`);
    }
    return quoteIdent(name);
  }

  /** `op.value` (with an optional `not.`) on a column. `inTree`: values may be quoted. */
  condition(column: string, opValue: string, inTree: boolean): string {
    let rest = opValue;
    let negate = false;
    if (rest.startsWith("not.")) {
      negate = true;
      rest = rest.slice(4);
    }
    const dot = rest.indexOf(".");
    const op = dot < 0 ? rest : rest.slice(0, dot);
    const raw = dot < 0 ? "" : rest.slice(dot + 1);
    if (/\((any|all)\)$/.test(op)) throw unsupported(`the ${op} operator modifier`);
    const col = this.column(column);
    let sql: string;
    if (op in COMPARISONS) {
      if (dot < 0) throw new ApiError(400, "PGRST100", `"failed to parse filter (${opValue})"`);
      let value = inTree ? unquote(raw) : raw;
      if (op === "like" || op === "ilike") value = value.replace(/\*/g, "%");
      sql = `${col} ${COMPARISONS[op]} ${this.param(value)}`;
    } else if (op === "is") {
      const v = raw.toLowerCase();
      if (!["null", "not_null", "true", "false", "unknown"].includes(v)) {
        throw new ApiError(400, "PGRST100", `"failed to parse filter (${opValue})"`, `unexpected "${raw}"`);
      }
      sql = `${col} is ${v === "not_null" ? "not null" : v}`;
    } else if (op === "in") {
      if (!raw.startsWith("(") || !raw.endsWith(")")) {
        throw new ApiError(400, "PGRST100", `"failed to parse filter (${opValue})"`, "expected (...)");
      }
      const inner = raw.slice(1, -1);
      const items = inner === "" ? [] : splitTopLevel(inner).map(unquote);
      sql = items.length === 0
        ? "false"
        : `${col} in (${items.map((v) => this.param(v)).join(", ")})`;
    } else if (KNOWN_UNSUPPORTED_OPS.has(op)) {
      throw unsupported(`the "${op}" filter operator`);
    } else {
      throw new ApiError(400, "PGRST100", `"failed to parse filter (${opValue})"`, `unknown operator "${op}"`);
    }
    return negate ? `not (${sql})` : sql;
  }

  /** `(a.eq.1,b.ilike.*x*,and(c.is.null,d.neq.2))` joined by `joiner`. */
  logicTree(joiner: "and" | "or", list: string, negate: boolean): string {
    if (!list.startsWith("(") || !list.endsWith(")")) {
      throw new ApiError(400, "PGRST100", `"failed to parse logic tree (${list})"`);
    }
    const parts = splitTopLevel(list.slice(1, -1)).map((item) => {
      const nested = /^(not\.)?(and|or)(\(.*\))$/s.exec(item);
      if (nested) return this.logicTree(nested[2] as "and" | "or", nested[3], !!nested[1]);
      const dot = item.indexOf(".");
      if (dot < 0) throw new ApiError(400, "PGRST100", `"failed to parse logic tree (${item})"`);
      return this.condition(item.slice(0, dot), item.slice(dot + 1), true);
    });
    const sql = `(${parts.join(` ${joiner} `)})`;
    return negate ? `not ${sql}` : sql;
  }
}

const RESERVED_PARAMS = new Set(["select", "order", "limit", "offset", "columns", "on_conflict"]);

/** The WHERE clause of the query string's filters (`and`/`or` trees and column filters). */
function whereClause(b: SqlBuilder, url: URL): string {
  const parts: string[] = [];
  for (const [key, value] of url.searchParams) {
    if (RESERVED_PARAMS.has(key)) continue;
    const tree = /^(not\.)?(and|or)$/.exec(key);
    if (tree) parts.push(b.logicTree(tree[2] as "and" | "or", value, !!tree[1]));
    else if (key.includes(".")) throw unsupported(`filters on embedded resources ("${key}")`);
    else parts.push(b.condition(key, value, false));
  }
  return parts.length ? `where ${parts.join(" and ")}` : "";
}

/** `select=*`, `select=id,email`, `select=alias:column`. */
function selectList(b: SqlBuilder, select: string | null): string {
  const items = (select ?? "*").split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (items.length === 0) return "*";
  return items.map((item) => {
    if (item === "*") return "*";
    if (/[()!]/.test(item)) throw unsupported(`embedded resources in select ("${item}")`);
    const alias = /^([^:]+):([^:].*)$/.exec(item);
    if (alias) return `${b.column(alias[2])} as ${quoteIdent(alias[1])}`;
    return b.column(item);
  }).join(", ");
}

/** `order=created_at.desc.nullslast,id.asc`. */
function orderClause(b: SqlBuilder, order: string | null): string {
  if (!order) return "";
  const terms = splitTopLevel(order).map((term) => {
    const [column, ...mods] = term.split(".");
    let sql = b.column(column);
    for (const mod of mods) {
      if (mod === "asc" || mod === "desc") sql += ` ${mod}`;
      else if (mod === "nullsfirst") sql += " nulls first";
      else if (mod === "nullslast") sql += " nulls last";
      else throw new ApiError(400, "PGRST100", `"failed to parse order (${order})"`, `unexpected "${mod}"`);
    }
    return sql;
  });
  return `order by ${terms.join(", ")}`;
}

interface Prefer {
  count?: "exact" | "planned" | "estimated";
  return?: "representation" | "minimal";
}

function parsePrefer(req: Request): Prefer {
  const out: Prefer = {};
  const header = req.headers.get("prefer");
  if (!header) return out;
  for (const raw of header.split(",")) {
    const pref = raw.trim();
    if (pref === "") continue;
    const [key, value] = pref.split("=").map((s) => s.trim());
    if (key === "count" && (value === "exact" || value === "planned" || value === "estimated")) {
      out.count = value;
    } else if (key === "return" && (value === "representation" || value === "minimal")) {
      out.return = value;
    } else if (key === "handling" && value === "lenient") {
      // the default
    } else {
      throw unsupported(`Prefer: ${pref}`);
    }
  }
  return out;
}

/** The requested window: limit/offset parameters intersected with a Range header. */
function requestedRange(req: Request, url: URL, maxRows: number): { offset: number; limit: number } {
  const num = (name: string) => {
    const v = url.searchParams.get(name);
    if (v === null) return null;
    if (!/^\d+$/.test(v)) throw new ApiError(400, "PGRST100", `"failed to parse ${name} (${v})"`);
    return Number(v);
  };
  let lo = num("offset") ?? 0;
  const limit = num("limit");
  let hi = limit === null ? Infinity : lo + limit - 1;
  const range = req.headers.get("range");
  if (range) {
    const unit = req.headers.get("range-unit");
    if (unit && unit !== "items") throw unsupported(`Range-Unit: ${unit}`);
    const m = /^(?:items=)?(\d+)-(\d*)$/.exec(range.trim());
    if (!m) throw unsupported(`the Range header "${range}"`);
    lo = Math.max(lo, Number(m[1]));
    if (m[2] !== "") hi = Math.min(hi, Number(m[2]));
  }
  const size = hi === Infinity ? maxRows : Math.min(maxRows, Math.max(0, hi - lo + 1));
  return { offset: lo, limit: size };
}

// ---------------------------------------------------------------------------
// The stand-in
// ---------------------------------------------------------------------------

export class DataApiStandIn {
  readonly #sql: Sql;
  readonly #opts: DataApiOptions;
  readonly #secret: Uint8Array;
  readonly #roleSettings = new Map<string, Promise<[string, string][]>>();

  constructor(opts: DataApiOptions) {
    this.#opts = opts;
    this.#secret = new TextEncoder().encode(opts.jwtSecret);
    // PostgREST logs in as authenticator (noinherit) and switches role per request.
    this.#sql = postgres(withCredentials(opts.dbUrl, "authenticator", "postgres"), {
      prepare: false,
      max: 8,
      idle_timeout: 10,
      onnotice: () => {},
      connection: { application_name: "data-api-standin" },
    }) as unknown as Sql;
  }

  async close(): Promise<void> {
    await this.#sql.end({ timeout: 2 });
  }

  /** Handles /rest/v1/... requests. */
  async handle(req: Request): Promise<Response> {
    if (req.method === "OPTIONS") {
      return new Response(null, {
        status: 204,
        headers: {
          ...CORS_HEADERS,
          "access-control-allow-methods": "GET, HEAD, POST, PATCH, DELETE, OPTIONS",
          "access-control-allow-headers":
            "authorization, apikey, content-type, prefer, range, range-unit, accept-profile, content-profile, x-client-info",
          "access-control-max-age": "3600",
        },
      });
    }
    let role = "anon";
    try {
      const claims = await this.#claims(req);
      role = claims.role as string;
      const url = new URL(req.url);
      const path = url.pathname.replace(/^\/rest\/v1/, "");
      for (const h of ["accept-profile", "content-profile"]) {
        const profile = req.headers.get(h);
        if (profile && profile !== SCHEMA) throw unsupported(`schemas other than public (${h}: ${profile})`);
      }
      const accept = (req.headers.get("accept") ?? "application/json").split(";")[0].trim();
      if (!["application/json", OBJECT_MEDIA, "*/*", ""].includes(accept)) {
        throw unsupported(`the media type ${accept}`);
      }
      const single = accept === OBJECT_MEDIA;
      const rpc = /^\/rpc\/([^/]+)$/.exec(path);
      if (rpc) {
        if (req.method !== "POST") throw unsupported(`${req.method} on /rpc (only POST)`);
        return await this.#rpc(req, url, claims, decodeURIComponent(rpc[1]), single);
      }
      const table = /^\/([^/]+)$/.exec(path);
      if (!table) {
        if (path === "" || path === "/") throw unsupported("the OpenAPI description (GET /rest/v1/)");
        throw new ApiError(404, "PGRST125", `Invalid path specified in request URL`);
      }
      const name = decodeURIComponent(table[1]);
      if (req.method === "GET" || req.method === "HEAD") {
        return await this.#read(req, url, claims, name, single);
      }
      if (req.method === "PATCH") return await this.#update(req, url, claims, name, single);
      if (req.method === "POST") throw unsupported("inserts (POST on a table)");
      if (req.method === "DELETE") throw unsupported("deletes (DELETE on a table)");
      if (req.method === "PUT") throw unsupported("upserts (PUT on a table)");
      throw unsupported(`the method ${req.method}`);
    } catch (err) {
      if (err instanceof ApiError) return errorResponse(err);
      const pg = err as { code?: string; message?: string; detail?: string; hint?: string };
      if (typeof pg?.code === "string" && /^[0-9A-Z]{5}$/.test(pg.code)) {
        return errorResponse(
          new ApiError(
            statusForSqlState(pg.code, role),
            pg.code,
            pg.message ?? "database error",
            pg.detail ?? null,
            pg.hint ?? null,
          ),
        );
      }
      return errorResponse(new ApiError(503, "PGRST000", "Database client error.", String(err)));
    }
  }

  /** The API key check of the gateway, then the JWT's claims (the anon key → anon). */
  async #claims(req: Request): Promise<JWTPayload> {
    const apikey = req.headers.get("apikey");
    const auth = req.headers.get("authorization");
    const bearer = auth ? /^bearer\s+(\S+)\s*$/i.exec(auth)?.[1] ?? null : null;
    if (!apikey && !bearer) {
      throw new ApiError(401, null, "No API key found in request", null, "No `apikey` request header or url param was found.");
    }
    if (apikey && !this.#opts.apiKeys().includes(apikey)) {
      throw new ApiError(401, null, "Invalid API key", null, "Double check your Supabase `anon` or `service_role` API key.");
    }
    const token = bearer ?? apikey!;
    let claims: JWTPayload;
    try {
      const { alg } = decodeProtectedHeader(token);
      if (alg === "HS256") {
        claims = (await jwtVerify(token, this.#secret, { algorithms: ["HS256"] })).payload;
      } else if (this.#opts.jwks) {
        const keys = createLocalJWKSet(this.#opts.jwks() as Parameters<typeof createLocalJWKSet>[0]);
        claims = (await jwtVerify(token, keys)).payload;
      } else {
        throw new Error("unknown key");
      }
    } catch (err) {
      const expired = (err as { code?: string })?.code === "ERR_JWT_EXPIRED";
      throw new ApiError(
        401,
        expired ? "PGRST303" : "PGRST301",
        expired ? "JWT expired" : "JWT could not be decoded or verified",
        null,
        null,
        { "www-authenticate": `Bearer error="invalid_token"` },
      );
    }
    const role = typeof claims.role === "string" ? claims.role : "anon";
    if (!API_ROLES.has(role)) {
      throw new ApiError(401, "PGRST301", `JWT role "${role}" is not one of the API roles`);
    }
    return { ...claims, role };
  }

  /** The role's own settings (alter role ... set), applied per request as PostgREST does. */
  #settingsOf(role: string): Promise<[string, string][]> {
    let found = this.#roleSettings.get(role);
    if (!found) {
      found = this.#sql<{ setting: string }[]>`
        select unnest(s.setconfig) as setting from pg_catalog.pg_db_role_setting s
        where s.setrole = (select oid from pg_catalog.pg_roles where rolname = ${role})
          and s.setdatabase in (0, (select oid from pg_catalog.pg_database where datname = current_database()))`
        .then((rows) => rows.map((r) => {
          const i = r.setting.indexOf("=");
          return [r.setting.slice(0, i), r.setting.slice(i + 1)] as [string, string];
        }));
      this.#roleSettings.set(role, found);
    }
    return found;
  }

  /** One transaction as the JWT's role with the request's GUCs, as PostgREST runs it. */
  async #asRole<T>(
    req: Request,
    claims: JWTPayload,
    work: (tx: TxSql) => Promise<T>,
  ): Promise<T> {
    const role = claims.role as string;
    const settings = await this.#settingsOf(role);
    const headers: Record<string, string> = {};
    req.headers.forEach((v, k) => {
      headers[k] = v;
    });
    const url = new URL(req.url);
    return await this.#sql.begin(async (tx) => {
      await tx.unsafe(`set local role ${quoteIdent(role)}`);
      const gucs: [string, string][] = [
        ["search_path", "public, extensions"],
        ...settings.filter(([k]) => k !== "search_path"),
        ["role", role],
        ["request.jwt.claims", JSON.stringify(claims)],
        ["request.method", req.method],
        ["request.path", url.pathname.replace(/^\/rest\/v1/, "")],
        ["request.headers", JSON.stringify(headers)],
      ];
      await tx.unsafe(
        `select ${gucs.map((_, i) => `set_config($${2 * i + 1}, $${2 * i + 2}, true)`).join(", ")}`,
        gucs.flat(),
      );
      return await work(tx as unknown as TxSql);
    }) as T;
  }

  /** Columns of a table or view in `public` (404 as PostgREST when there is none). */
  async #columns(tx: TxSql, name: string): Promise<Set<string>> {
    const rows = await tx<{ attname: string }[]>`
      select a.attname from pg_catalog.pg_attribute a
      join pg_catalog.pg_class c on c.oid = a.attrelid
      join pg_catalog.pg_namespace n on n.oid = c.relnamespace
      where n.nspname = ${SCHEMA} and c.relname = ${name} and c.relkind in ('r', 'v', 'm', 'f', 'p')
        and a.attnum > 0 and not a.attisdropped`;
    if (rows.length === 0) {
      throw new ApiError(
        404,
        "PGRST205",
        `Could not find the table '${SCHEMA}.${name}' in the schema cache`,
      );
    }
    return new Set(rows.map((r) => r.attname));
  }

  async #read(req: Request, url: URL, claims: JWTPayload, name: string, single: boolean) {
    const prefer = parsePrefer(req);
    if (prefer.return) throw unsupported("Prefer: return on a read");
    const maxRows = this.#opts.maxRows ?? 1000;
    const { offset, limit } = requestedRange(req, url, maxRows);
    return await this.#asRole(req, claims, async (tx) => {
      const b = new SqlBuilder(await this.#columns(tx, name));
      const from = `${quoteIdent(SCHEMA)}.${quoteIdent(name)}`;
      const cols = selectList(b, url.searchParams.get("select"));
      const where = whereClause(b, url);
      const order = orderClause(b, url.searchParams.get("order"));
      const rows = await tx.unsafe(
        `select coalesce(json_agg(_r), '[]')::text as body, count(*)::int as n from (
           select ${cols} from ${from} ${where} ${order} limit ${limit} offset ${offset}) _r`,
        b.params,
      );
      const body = rows[0].body as string;
      const n = rows[0].n as number;
      const total = prefer.count ? await this.#count(tx, prefer.count, from, where, b, maxRows) : null;
      const range = n > 0 ? `${offset}-${offset + n - 1}/${total ?? "*"}` : `*/${total ?? "*"}`;
      if (total !== null && offset > 0 && offset >= total && n === 0) {
        throw new ApiError(
          416,
          "PGRST103",
          "Requested range not satisfiable",
          `An offset of ${offset} was requested, but there are only ${total} rows.`,
          null,
          { "content-range": `*/${total}` },
        );
      }
      const headers: Record<string, string> = { "content-range": range };
      if (single) return this.#single(body, n, req.method === "HEAD", headers);
      return respond(200, req.method === "HEAD" ? null : body, headers);
    });
  }

  /** count=exact: count(*); planned: the planner's estimate; estimated: exact up to maxRows. */
  async #count(
    tx: TxSql,
    how: "exact" | "planned" | "estimated",
    from: string,
    where: string,
    b: SqlBuilder,
    maxRows: number,
  ): Promise<number> {
    const exact = async () =>
      (await tx.unsafe(`select count(*)::bigint::text as n from ${from} ${where}`, b.params))[0]
        .n as string;
    if (how === "exact") return Number(await exact());
    const [plan] = await tx.unsafe(`explain (format json) select 1 from ${from} ${where}`, b.params);
    const planned = Number(
      (plan["QUERY PLAN"] as { Plan: { "Plan Rows": number } }[])[0].Plan["Plan Rows"],
    );
    if (how === "planned" || planned > maxRows) return planned;
    return Number(await exact());
  }

  #single(body: string, n: number, head: boolean, headers: Record<string, string>): Response {
    if (n !== 1) {
      throw new ApiError(
        406,
        "PGRST116",
        "JSON object requested, multiple (or no) rows returned",
        `The result contains ${n} rows`,
      );
    }
    const row = JSON.stringify((JSON.parse(body) as unknown[])[0]);
    return respond(200, head ? null : row, {
      ...headers,
      "content-type": `${OBJECT_MEDIA}; charset=utf-8`,
    });
  }

  async #update(req: Request, url: URL, claims: JWTPayload, name: string, single: boolean) {
    const prefer = parsePrefer(req);
    if (prefer.count) throw unsupported("Prefer: count on a write");
    for (const p of ["order", "limit", "offset", "columns"]) {
      if (url.searchParams.has(p)) throw unsupported(`"${p}" on PATCH`);
    }
    const contentType = (req.headers.get("content-type") ?? "").split(";")[0].trim();
    if (contentType !== "application/json") throw unsupported(`request bodies of type ${contentType || "(none)"}`);
    let patch: unknown;
    try {
      patch = JSON.parse(await req.text());
    } catch {
      throw new ApiError(400, "PGRST102", "Empty or invalid json");
    }
    if (patch === null || typeof patch !== "object" || Array.isArray(patch)) {
      throw unsupported("PATCH bodies that are not one JSON object");
    }
    const keys = Object.keys(patch);
    if (keys.length === 0) throw unsupported("PATCH with an empty object");
    return await this.#asRole(req, claims, async (tx) => {
      const columns = await this.#columns(tx, name);
      const b = new SqlBuilder(columns);
      for (const k of keys) {
        if (!columns.has(k)) {
          throw new ApiError(400, "PGRST204", `Could not find the '${k}' column of '${name}' in the schema cache`);
        }
      }
      const body = b.param(JSON.stringify(patch));
      const from = `${quoteIdent(SCHEMA)}.${quoteIdent(name)}`;
      const set = keys.map(quoteIdent).join(", ");
      const where = whereClause(b, url);
      const returning = prefer.return === "representation"
        ? selectList(b, url.searchParams.get("select"))
        : "1 as _";
      const [row] = await tx.unsafe(
        `with _u as (
           update ${from} set (${set}) = (select ${set} from json_populate_record(null::${from}, ${body}::text::json))
           ${where} returning ${returning})
         select coalesce(json_agg(_u), '[]')::text as body, count(*)::int as n from _u`,
        b.params,
      );
      const n = row.n as number;
      const range = n > 0 ? `0-${n - 1}/*` : "*/*";
      if (single && n !== 1) {
        // PostgREST rolls the write back when the object form does not hold.
        throw new ApiError(
          406,
          "PGRST116",
          "JSON object requested, multiple (or no) rows returned",
          `The result contains ${n} rows`,
        );
      }
      if (prefer.return !== "representation") {
        return respond(204, null, { "content-range": range });
      }
      if (single) return this.#single(row.body as string, n, false, { "content-range": range });
      return respond(200, row.body as string, { "content-range": range });
    });
  }

  async #rpc(req: Request, url: URL, claims: JWTPayload, fn: string, single: boolean) {
    const prefer = parsePrefer(req);
    if (prefer.count) throw unsupported("Prefer: count on /rpc");
    if ([...url.searchParams.keys()].length > 0) {
      throw unsupported("query parameters (filters, select, order) on /rpc");
    }
    const text = await req.text();
    let args: unknown = {};
    if (text.trim() !== "") {
      try {
        args = JSON.parse(text);
      } catch {
        throw new ApiError(400, "PGRST102", "Empty or invalid json");
      }
    }
    if (args === null || typeof args !== "object" || Array.isArray(args)) {
      throw unsupported("/rpc bodies that are not one JSON object of named arguments");
    }
    const names = Object.keys(args as object).sort();
    return await this.#asRole(req, claims, async (tx) => {
      // The overload whose argument names are exactly the ones sent (defaults may be left out).
      const candidates = await tx<{
        oid: number;
        args: string[] | null;
        types: string[] | null;
        defaults: number;
        retset: boolean;
        rettype: string;
        composite: boolean;
      }[]>`
        select p.oid::int as oid, p.proargnames as args,
          array(select pg_catalog.format_type(t, null) from unnest(p.proargtypes) t) as types,
          p.pronargdefaults::int as defaults, p.proretset as retset,
          pg_catalog.format_type(p.prorettype, null) as rettype,
          (select t.typtype = 'c' or p.prorettype = 'pg_catalog.record'::regtype
             from pg_catalog.pg_type t where t.oid = p.prorettype) as composite
        from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
        where n.nspname = ${SCHEMA} and p.proname = ${fn} and p.prokind = 'f'`;
      const match = candidates.find((c) => {
        const argNames = (c.args ?? []).slice(0, (c.types ?? []).length);
        if (argNames.some((a) => a === "") && argNames.length > 0) return false;
        const required = argNames.slice(0, argNames.length - c.defaults);
        return names.every((n) => argNames.includes(n)) && required.every((r) => names.includes(r));
      });
      if (!match) {
        throw new ApiError(
          404,
          "PGRST202",
          `Could not find the function ${SCHEMA}.${fn}(${names.join(", ")}) in the schema cache`,
        );
      }
      // As PostgREST: the arguments from one JSON object typed by json_to_record.
      const argNames = match.args ?? [];
      const defs = names.map((n) => `${quoteIdent(n)} ${match.types![argNames.indexOf(n)]}`);
      const params = [JSON.stringify(args)];
      const call = `${quoteIdent(SCHEMA)}.${quoteIdent(fn)}(${
        names.map((n) => `${quoteIdent(n)} => _a.${quoteIdent(n)}`).join(", ")
      })`;
      const argsFrom = names.length
        ? ` from json_to_record($1::text::json) as _a(${defs.join(", ")})`
        : "";
      if (match.rettype === "void") {
        await tx.unsafe(`select ${call}${argsFrom}`, names.length ? params : []);
        return respond(204, null);
      }
      const from = names.length ? `json_to_record($1::text::json) as _a(${defs.join(", ")}), ` : "";
      const sql = match.retset || match.composite
        ? `select ${match.retset ? "coalesce(json_agg(_r), '[]')" : "to_json(_r)"}::text as body,
             count(*)::int as n from ${from}lateral ${call} _r`
        : `select to_json(${call})::text as body, 1 as n${argsFrom}`;
      const [row] = await tx.unsafe(sql, names.length ? params : []);
      if (single) {
        if (match.retset) return this.#single(row.body as string, row.n as number, false, {});
        return respond(200, row.body as string, { "content-type": `${OBJECT_MEDIA}; charset=utf-8` });
      }
      return respond(200, (row.body as string | null) ?? "null");
    });
  }
}
