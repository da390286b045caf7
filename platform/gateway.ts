// LOCAL PLATFORM (development and tests only; never deployed): a stand-in for the hosted platform.
// The local "API gateway": one port (default 54321, or USER_SYNC_API_PORT) serving
//   /functions/v1/<name>  → the exported handlers of our Edge Functions
//   /auth/v1/...          → the Supabase Auth stand-in (auth_standin.ts)
//   /rest/v1/...          → the Data API (PostgREST) stand-in (data_api.ts)
// as the Supabase API gateway does for a project. Used by the tests and by
// `npm start` (run this file: `deno run -A platform/gateway.ts`).
import { createAuthWebhookHandler } from "../supabase/functions/auth-webhook/handler.ts";
import { createCreateUserHandler } from "../supabase/functions/create-user/handler.ts";
import type { Handler, HandlerOptions } from "../supabase/functions/_shared/runtime.ts";
import { createSyncAllHandler } from "../supabase/functions/sync-all/handler.ts";
import { AuthStandIn } from "./auth_standin.ts";
import { withGatewayCors } from "./cors.ts";
import { DataApiStandIn } from "./data_api.ts";
import { apiKey, LOCAL_HOOK_SECRET, LOCAL_JWT_SECRET, localApiPort, localDbUrl } from "./local.ts";

export const FUNCTIONS = {
  "sync-all": createSyncAllHandler,
  "create-user": createCreateUserHandler,
  "auth-webhook": createAuthWebhookHandler,
} as const;
export type FunctionName = keyof typeof FUNCTIONS;

export interface LocalStackOptions {
  /** Database URL of `postgres` (default: SPEC §5, port from USER_SYNC_DB_PORT). */
  dbUrl?: string;
  /** Port to listen on; 0 picks a free one (default USER_SYNC_API_PORT or 54321). */
  port?: number;
  hostname?: string;
  jwtSecret?: string;
  hookSecret?: string;
  /** How Auth signs user tokens: the legacy HS256 secret, or an ES256 key in the JWKS. */
  jwtAlg?: "HS256" | "ES256";
  /** Enable the Auth hooks pointing at our auth-webhook (both by default). */
  hooks?: { beforeUserCreated?: boolean; customAccessToken?: boolean };
  /** Extra environment for the functions (added to / overriding the defaults). */
  functionEnv?: Record<string, string | undefined>;
  /** fetch the functions use to reach Auth (fault injection in tests). */
  functionFetch?: typeof fetch;
}

export interface LocalStack {
  url: string;
  port: number;
  dbUrl: string;
  anonKey: string;
  serviceRoleKey: string;
  jwtSecret: string;
  hookSecret: string;
  /** The environment the functions run with (what the platform would inject). */
  functionEnv: Record<string, string | undefined>;
  auth: AuthStandIn;
  dataApi: DataApiStandIn;
  handlers: Record<FunctionName, Handler>;
  close(): Promise<void>;
}

function notFound(message: string): Response {
  return new Response(JSON.stringify({ error: { code: "not_found", message } }), {
    status: 404,
    headers: { "content-type": "application/json" },
  });
}

/** Starts the gateway, the Auth stand-in and the three functions on one port. */
export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const dbUrl = options.dbUrl ?? localDbUrl();
  const jwtSecret = options.jwtSecret ?? LOCAL_JWT_SECRET;
  const hookSecret = options.hookSecret ?? LOCAL_HOOK_SECRET;
  const anonKey = await apiKey("anon", jwtSecret);
  const serviceRoleKey = await apiKey("service_role", jwtSecret);
  const hooks = options.hooks ?? { beforeUserCreated: true, customAccessToken: true };

  let baseUrl = "";
  const auth = new AuthStandIn({
    dbUrl,
    jwtSecret,
    jwtAlg: options.jwtAlg,
    publicUrl: () => baseUrl,
    hookSecret,
  });
  await auth.init();
  const dataApi = new DataApiStandIn({
    dbUrl,
    jwtSecret,
    apiKeys: () => [anonKey, serviceRoleKey],
    jwks: () => auth.jwks,
  });

  const handlers = {} as Record<FunctionName, Handler>;
  const functionEnv: Record<string, string | undefined> = {};
  const server = Deno.serve({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? localApiPort(),
    onListen: () => {},
  }, async (req) => {
    const { pathname } = new URL(req.url);
    const fn = /^\/functions\/v1\/([^/]+)(\/.*)?$/.exec(pathname);
    if (fn) {
      const handler = handlers[fn[1] as FunctionName];
      return handler ? await handler(req) : notFound(`Function ${fn[1]} not found.`);
    }
    if (pathname === "/auth/v1" || pathname.startsWith("/auth/v1/")) {
      return await withGatewayCors(req, (r) => auth.handle(r));
    }
    if (pathname === "/rest/v1" || pathname.startsWith("/rest/v1/")) return await dataApi.handle(req);
    return notFound(`No route ${pathname}.`);
  });
  const port = server.addr.port;
  baseUrl = `http://${options.hostname ?? "127.0.0.1"}:${port}`;

  // What the platform injects into Edge Functions, plus our USER_SYNC_* settings.
  Object.assign(functionEnv, {
    SUPABASE_URL: baseUrl,
    SUPABASE_DB_URL: dbUrl,
    SUPABASE_ANON_KEY: anonKey,
    SUPABASE_SERVICE_ROLE_KEY: serviceRoleKey,
    USER_SYNC_JWT_SECRET: jwtSecret,
    USER_SYNC_HOOK_SECRET: hookSecret,
  }, options.functionEnv ?? {});
  const handlerOptions: HandlerOptions = { env: functionEnv, fetch: options.functionFetch };
  for (const [name, create] of Object.entries(FUNCTIONS)) {
    handlers[name as FunctionName] = create(handlerOptions);
  }
  // The hooks call our auth-webhook function through the gateway, as Auth would.
  const hookUrl = `${baseUrl}/functions/v1/auth-webhook`;
  auth.setHookUrls({
    beforeUserCreated: hooks.beforeUserCreated ? hookUrl : undefined,
    customAccessToken: hooks.customAccessToken ? hookUrl : undefined,
  });

  return {
    url: baseUrl,
    port,
    dbUrl,
    anonKey,
    serviceRoleKey,
    jwtSecret,
    hookSecret,
    functionEnv,
    auth,
    dataApi,
    handlers,
    async close() {
      await server.shutdown();
      await Promise.all(Object.values(handlers).map((h) => h.close()));
      await Promise.all([auth.close(), dataApi.close()]);
    },
  };
}

if (import.meta.main) {
  const stack = await startLocalStack();
  const lines = [
    `User Sync local API on ${stack.url} (development-only values, SPEC §5)`,
    `  functions:  ${stack.url}/functions/v1/{sync-all,create-user,auth-webhook}`,
    `  auth:       ${stack.url}/auth/v1`,
    `  data API:   ${stack.url}/rest/v1 (stand-in: the part of PostgREST @user-sync/client uses)`,
    `  database:   ${stack.dbUrl}`,
    `  anon key:   ${stack.anonKey}`,
    `  service_role key: ${stack.serviceRoleKey}`,
  ];
  console.log(lines.join("\n"));
  const stop = async () => {
    await stack.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}
