#!/usr/bin/env node
// The `cdktr` command: runs the compiled CLI (build first: `npm run build`).
// biome-ignore lint/style/noRestrictedImports: the bin shim of this workspace runs its own build
import "../dist/main.js";
