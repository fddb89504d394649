import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The browser app: built into ../dist/public, which the dashboard process serves.
export default defineConfig({
  root: import.meta.dirname,
  plugins: [react()],
  // The entry (React, the router, TanStack Query, the list pages) and a chunk for the pages with a
  // DAG (React Flow, dagre), loaded when first opened; all served by the dashboard itself.
  build: { outDir: "../dist/public", emptyOutDir: true },
});
