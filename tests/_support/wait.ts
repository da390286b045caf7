// Shared test plumbing: waiting for something that happens asynchronously (a cron run,
// a lock holder, a background request), by polling.
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls probe every intervalMs until it answers something other than undefined. */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await probe();
    if (v !== undefined) return v;
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
