import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The browser app: built into ../dist/public, which the dashboard process serves.
export default defineConfig({
  root: import.meta.dirname,
  plugins: [react()],
  // One bundle (~570 kB, ~180 kB gzipped: React, React Flow, TanStack Query) served from the same host.
  build: { outDir: "../dist/public", emptyOutDir: true, chunkSizeWarningLimit: 800 },
});
