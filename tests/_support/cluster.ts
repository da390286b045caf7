// Shared test plumbing: a test's own PostgreSQL cluster, driven through scripts/db.sh
// (the same commands as `npm start` / `npm test`) on its own port and data directory.
import { fileURLToPath } from "node:url";

/** The checkout these tests belong to (ends with /). */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Runs a command; resolves to its combined output, throws with that output on failure. */
export async function run(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string } = {},
): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    env: opts.env,
    cwd: opts.cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} exited with ${out.code}:\n${text.slice(-4000)}`);
  }
  return text;
}

export interface Cluster {
  port: number;
  /** Its data directory (`scripts/db.sh datadir NAME`: outside the checkout if need be). */
  pgdata: string;
  /** `bash scripts/db.sh ARGS` against this cluster. */
  db(...args: string[]): Promise<string>;
  /** dump_schema of scripts/lib/dump.sh: what User Sync owns, as schema-check compares it. */
  dumpSchema(): Promise<string>;
  /**
   * A fresh start, then `supabase db push` of only the migrations `keep` picks (by file
   * name), from a copy of the project in `work`: a database as a released version left it.
   */
  installReleased(work: string, keep: (file: string) => boolean): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A cluster called `name` on `port`, managed by the scripts of checkout `root`; with
 * `osUser` (needs root), every db.sh command runs as that OS user, HOME set to `home`.
 */
export async function cluster(
  name: string,
  port: number,
  root = ROOT,
  opts: { osUser?: string; home?: string } = {},
): Promise<Cluster> {
  const dbSh = `${root}scripts/db.sh`;
  const bash = (args: string[], env: Record<string, string> = {}) =>
    opts.osUser
      ? run("runuser", ["-u", opts.osUser, "--", "env", `HOME=${opts.home ?? "/tmp"}`,
        ...Object.entries(env).map(([k, v]) => `${k}=${v}`), "bash", ...args], { cwd: root })
      : run("bash", args, { env, cwd: root });
  const pgdata = (await bash([dbSh, "datadir", name])).trim();
  const env = { USER_SYNC_DB_PORT: String(port), USER_SYNC_PGDATA: pgdata };
  const db = (...args: string[]) => bash([dbSh, ...args], env);
  return {
    port,
    pgdata,
    db,
    dumpSchema: () =>
      run("bash", ["-c", 'source "$1" && dump_schema "$2"', "dump", `${root}scripts/lib/dump.sh`, String(port)]),
    installReleased: async (work, keep) => {
      await Deno.mkdir(`${work}/supabase/migrations`, { recursive: true });
      await Deno.copyFile(`${root}supabase/config.toml`, `${work}/supabase/config.toml`);
      for (const e of Deno.readDirSync(`${root}supabase/migrations`)) {
        if (e.name.endsWith(".sql") && keep(e.name)) {
          await Deno.copyFile(`${root}supabase/migrations/${e.name}`, `${work}/supabase/migrations/${e.name}`);
        }
      }
      await db("start", "--fresh");
      await db("push", "--workdir", work);
    },
    stop: async () => {
      await db("stop");
    },
  };
}
