// LOCAL PLATFORM (development and tests only; never deployed): a stand-in for the hosted platform.
// The pg_net background worker, reproduced for the local stack: takes the requests
// that committed transactions queued with net.http_post / net.http_get, sends each
// once (no retries, the row's timeout, 5 s by default), and records the outcome in
// net._http_response, as pg_net does. A request is removed from the queue when it is
// taken, so a crash loses it: pg_net gives the same at-most-once delivery, which is
// why everything User Sync does through it is idempotent and healed by the next run.
import postgres from "postgres";

export interface NetSenderOptions {
  /** Superuser connection (supabase_admin), like pg_net's worker. */
  dbUrl: string;
  /** Poll interval in milliseconds (pg_net wakes on new rows; 250 ms is close enough). */
  intervalMs?: number;
  /** Requests taken per poll (pg_net's batch_size defaults to 200). */
  batchSize?: number;
  /** Called once per delivered request, e.g. for a log line. */
  onResponse?: (r: { id: number; url: string; status: number | null; error: string | null; ms: number }) => void;
}

interface QueuedRequest {
  id: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  body: Uint8Array | null;
  timeout_milliseconds: number;
}

export function startNetSender(opts: NetSenderOptions): { stop: () => Promise<void> } {
  const sql = postgres(opts.dbUrl, { max: 2, prepare: false, onnotice: () => {} });
  const interval = opts.intervalMs ?? 250;
  const batch = opts.batchSize ?? 200;
  const inFlight = new Set<Promise<void>>();
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;

  async function deliver(req: QueuedRequest): Promise<void> {
    const started = performance.now();
    let status: number | null = null;
    let error: string | null = null;
    let timedOut = false;
    let contentType: string | null = null;
    let headers: Record<string, string> = {};
    let content: string | null = null;
    try {
      const res = await fetch(req.url, {
        method: req.method,
        headers: req.headers,
        body: req.method === "GET" || req.body === null ? undefined : new Uint8Array(req.body),
        signal: AbortSignal.timeout(req.timeout_milliseconds),
      });
      status = res.status;
      contentType = res.headers.get("content-type");
      headers = Object.fromEntries(res.headers.entries());
      content = await res.text();
    } catch (e) {
      timedOut = e instanceof DOMException && e.name === "TimeoutError";
      error = timedOut
        ? `Timeout of ${req.timeout_milliseconds} ms reached`
        : (e instanceof Error ? e.message : String(e));
    }
    const ms = Math.round(performance.now() - started);
    try {
      await sql`
        insert into net._http_response (id, status_code, content_type, headers, content, timed_out, error_msg)
        values (${Number(req.id)}, ${status}, ${contentType}, ${sql.json(headers)}, ${content}, ${timedOut}, ${error})`;
    } catch {
      // the database went away: pg_net loses the response too
    }
    opts.onResponse?.({ id: Number(req.id), url: req.url.replace(/\?.*$/, ""), status, error, ms });
  }

  async function poll(): Promise<void> {
    if (stopped) return;
    try {
      const taken = await sql<QueuedRequest[]>`
        delete from net.http_request_queue
        where id in (
          select id from net.http_request_queue order by id limit ${batch} for update skip locked
        )
        returning id, method, url, headers, body, timeout_milliseconds`;
      for (const req of taken) {
        const p = deliver(req).finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
    } catch {
      // database restarting or stopped: try again on the next tick
    }
    if (!stopped) timer = setTimeout(poll, interval);
  }

  timer = setTimeout(poll, 0);
  return {
    async stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      await Promise.allSettled([...inFlight]);
      await sql.end({ timeout: 2 });
    },
  };
}
