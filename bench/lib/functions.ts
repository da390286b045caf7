// One Edge Function served in its own process (bench/serve.ts), as the Edge Runtime
// serves it, for the benchmark's HTTP and memory scenarios.
import { mkdirSync } from "node:fs";

export interface FnProc {
  proc: Deno.ChildProcess;
  port: number;
  url: string;
  logFile: string;
}

/** Starts `name` on `port` with `env` (the platform's variables); waits until it answers. */
export async function startFunction(
  root: string,
  name: string,
  port: number,
  env: Record<string, string>,
): Promise<FnProc> {
  const logFile = `${root}.local/bench-${name}.log`;
  mkdirSync(`${root}.local`, { recursive: true });
  // The function's log lines go straight to a file: a pipe drained by this process
  // would stall the server whenever the benchmark waits on something else.
  const proc = new Deno.Command("sh", {
    args: [
      "-c",
      'exec "$0" run --allow-all --no-check "$1" "$2" "$3" > "$4" 2>&1',
      Deno.execPath(),
      `${root}bench/serve.ts`,
      name,
      String(port),
      logFile,
    ],
    cwd: root,
    env: { SUPABASE_URL: `http://127.0.0.1:${port}`, NO_COLOR: "1", ...env },
    stdout: "null",
    stderr: "null",
    stdin: "null",
  }).spawn();
  const url = `http://127.0.0.1:${port}/functions/v1/${name}`;
  for (let i = 0; i < 200; i++) {
    try {
      const res = await fetch(url, { method: "OPTIONS" });
      await res.body?.cancel();
      return { proc, port, url, logFile };
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`${name} did not start on port ${port}`);
}

export async function stopFunction(f: FnProc): Promise<void> {
  try {
    f.proc.kill("SIGTERM");
  } catch { /* gone */ }
  await f.proc.status;
}
