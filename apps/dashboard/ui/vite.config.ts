import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The browser app: built into ../dist/public, which the dashboard process serves.
export default defineConfig({
  root: import.meta.dirname,
  plugins: [react()],
  build: { outDir: "../dist/public", emptyOutDir: true },
});
