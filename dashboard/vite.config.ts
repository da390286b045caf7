// Vite builds the dashboard as a static site (dist/): `npm run build:dashboard`.
import react from "@vitejs/plugin-react";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
  // Relative asset URLs: the build works from any path of any static host.
  base: "./",
  resolve: {
    alias: {
      "@user-sync/client/dashboard": fileURLToPath(new URL("../client/src/react/dashboard/index.ts", import.meta.url)),
    },
    dedupe: ["react", "react-dom"],
  },
  build: { target: "es2022", chunkSizeWarningLimit: 1000 },
});
