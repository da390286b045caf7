// The dashboard app: reads its configuration, makes the supabase-js client, renders the
// component from @user-sync/client/dashboard.
import { createClient } from "@supabase/supabase-js";
import { UserSyncDashboard } from "@user-sync/client/dashboard";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { loadConfig } from "./config.ts";

const root = createRoot(document.getElementById("root")!);

try {
  const config = await loadConfig();
  const supabase = createClient(config.supabaseUrl, config.anonKey);
  root.render(
    <StrictMode>
      <UserSyncDashboard supabase={supabase} refreshIntervalMs={config.refreshIntervalMs} />
    </StrictMode>,
  );
} catch (err) {
  root.render(
    <div style={{ font: "14px system-ui, sans-serif", padding: 24, color: "#991b1b" }} role="alert">
      The dashboard is not configured: {err instanceof Error ? err.message : String(err)}. Build it with
      VITE_SUPABASE_URL and VITE_SUPABASE_ANON_KEY, or put a config.json (&#123;"supabaseUrl",
      "anonKey"&#125;) next to index.html.
    </div>,
  );
}
