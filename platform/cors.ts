// LOCAL PLATFORM (development and tests only; never deployed): the CORS answers the
// hosted API gateway (Kong) gives every /auth/v1 request, so that a browser app on another
// origin (the dashboard on :54323) can sign in. The functions answer CORS themselves
// (supabase/functions/_shared/http.ts), as deployed ones must; so does the Data API
// stand-in (data_api.ts).
const ALLOW_HEADERS = "authorization, x-client-info, apikey, content-type, prefer, range, accept-profile, content-profile, x-supabase-api-version";

function corsHeaders(req: Request): Headers {
  const h = new Headers();
  h.set("access-control-allow-origin", req.headers.get("origin") ?? "*");
  h.set("access-control-allow-credentials", "true");
  h.set("access-control-allow-methods", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
  h.set("access-control-allow-headers", req.headers.get("access-control-request-headers") ?? ALLOW_HEADERS);
  h.set("access-control-expose-headers", "content-range, content-location, x-total-count");
  h.set("access-control-max-age", "3600");
  h.set("vary", "origin");
  return h;
}

/** Answers a preflight itself; adds the CORS headers to everything else. */
export async function withGatewayCors(req: Request, next: (req: Request) => Promise<Response>): Promise<Response> {
  if (req.method === "OPTIONS" && req.headers.has("access-control-request-method")) {
    return new Response(null, { status: 204, headers: corsHeaders(req) });
  }
  const res = await next(req);
  const out = new Response(res.body, res);
  for (const [k, v] of corsHeaders(req)) out.headers.set(k, v);
  return out;
}
