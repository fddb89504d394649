#!/usr/bin/env node
// The `cdktr` command: runs the compiled CLI (build first: `npm run build`).
import "../dist/main.js";
