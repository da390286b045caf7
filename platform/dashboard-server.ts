// LOCAL PLATFORM (development and tests only; never deployed): serves the dashboard's
// static build (dashboard/dist, from `npm run build:dashboard`) on :54323 (or
// USER_SYNC_DASHBOARD_PORT), as any static host would, plus /config.json with the local
// project URL and anon key. Deployed, the same build goes to any static host
// (Edge Functions cannot serve HTML on the default domain).
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

export const LOCAL_DASHBOARD_PORT = 54323;

/** The dashboard port: USER_SYNC_DASHBOARD_PORT, else 54323. */
export function localDashboardPort(): number {
  return Number(Deno.env.get("USER_SYNC_DASHBOARD_PORT") || LOCAL_DASHBOARD_PORT);
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".map": "application/json",
};

export interface DashboardServer {
  url: string;
  close(): Promise<void>;
}

export interface DashboardServerOptions {
  /** Public values the app reads from /config.json. */
  config: { supabaseUrl: string; anonKey: string; refreshIntervalMs?: number };
  port?: number;
  hostname?: string;
  distDir?: string;
}

export function startDashboardServer(options: DashboardServerOptions): DashboardServer {
  const distDir = options.distDir ?? fileURLToPath(new URL("../dashboard/dist", import.meta.url));
  const hostname = options.hostname ?? "127.0.0.1";
  // USER_SYNC_DASHBOARD_REFRESH_MS: a faster auto-refresh (the browser tests use it).
  const refresh = Number(Deno.env.get("USER_SYNC_DASHBOARD_REFRESH_MS")) || undefined;
  const configBody = JSON.stringify({ refreshIntervalMs: refresh, ...options.config });
  const server = Deno.serve({ hostname, port: options.port ?? localDashboardPort(), onListen: () => {} }, async (req) => {
    if (req.method !== "GET" && req.method !== "HEAD") return new Response("method not allowed", { status: 405 });
    const { pathname } = new URL(req.url);
    if (pathname === "/config.json") {
      return new Response(configBody, { headers: { "content-type": TYPES[".json"], "cache-control": "no-store" } });
    }
    const rel = normalize(decodeURIComponent(pathname)).replace(/^(\.\.(\/|$))+/, "");
    const candidates = rel.endsWith("/") ? [join(rel, "index.html")] : [rel, "index.html"];
    for (const candidate of candidates) {
      const file = join(distDir, candidate);
      if (!file.startsWith(distDir)) break;
      try {
        const body = await Deno.readFile(file);
        const type = TYPES[extname(file)] ?? "application/octet-stream";
        const cache = file.includes("/assets/") ? "public, max-age=31536000, immutable" : "no-cache";
        return new Response(req.method === "HEAD" ? null : body, { headers: { "content-type": type, "cache-control": cache } });
      } catch {
        // next candidate (SPA fallback to index.html)
      }
    }
    return new Response("The dashboard is not built: run npm run build:dashboard.\n", {
      status: 503,
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  });
  return {
    url: `http://${hostname}:${server.addr.port}`,
    close: () => server.shutdown(),
  };
}
