// Where the dashboard finds the project: VITE_SUPABASE_URL / VITE_SUPABASE_ANON_KEY baked
// in at build time, else config.json next to index.html at run time (what `npm start`
// serves, and what a host can write without rebuilding). Only public values: the project
// URL and the anon (publishable) key; never a secret key.
export interface DashboardConfig {
  supabaseUrl: string;
  anonKey: string;
  refreshIntervalMs?: number;
}

export async function loadConfig(): Promise<DashboardConfig> {
  const env = import.meta.env;
  if (env.VITE_SUPABASE_URL && env.VITE_SUPABASE_ANON_KEY) {
    return { supabaseUrl: env.VITE_SUPABASE_URL, anonKey: env.VITE_SUPABASE_ANON_KEY };
  }
  const res = await fetch(new URL("config.json", document.baseURI), { cache: "no-store" });
  if (!res.ok) throw new Error(`config.json: HTTP ${res.status}`);
  const config = (await res.json()) as Partial<DashboardConfig>;
  if (typeof config.supabaseUrl !== "string" || typeof config.anonKey !== "string") {
    throw new Error("config.json needs supabaseUrl and anonKey");
  }
  return config as DashboardConfig;
}
