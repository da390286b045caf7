// Vite builds the dashboard as a static site (dist/): `npm run build:dashboard`.
import react from "@vitejs/plugin-react";
import { defaultClientConditions, defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
  // Relative asset URLs: the build works from any path of any static host.
  base: "./",
  resolve: {
    // The workspace's @user-sync/client from its TypeScript sources (its "source" export).
    conditions: ["source", ...defaultClientConditions],
    dedupe: ["react", "react-dom"],
  },
  build: { target: "es2022", chunkSizeWarningLimit: 1000 },
});
