/**
 * Process entry of the `cdktr` command (`bin/cdktr.js` imports it). The only file that touches
 * `process`: argv, the terminal, signals and the exit code.
 */
import { ConfigError, errorMessage, loadDotEnv } from "@cdktr/protocol";
import { runCli } from "./cli.js";
import type { CliIo } from "./io.js";

const STOP_SIGNALS: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
const listeners = new Set<(s: NodeJS.Signals) => void>();
let interruptedResolve: ((s: NodeJS.Signals) => void) | undefined;
let installed = false;

// Signal handlers are installed only when a command asks for them: `cdktr start <app>` runs the
// app in this process and the app installs its own.
function install(): void {
  if (installed) return;
  installed = true;
  for (const s of STOP_SIGNALS) {
    process.on(s, () => {
      interruptedResolve?.(s);
      for (const l of listeners) l(s);
      if (listeners.size === 0 && interruptedResolve === undefined) process.exit(130);
    });
  }
}

// `cdktr runs | head`: the reader went away. Stop quietly, like other Unix tools, instead of
// crashing with an EPIPE stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(process.exitCode ?? 0);
    throw e;
  });
}

let interrupted: Promise<NodeJS.Signals> | undefined;
const io: CliIo = {
  stdout: { write: (t) => void process.stdout.write(t) },
  stderr: { write: (t) => void process.stderr.write(t) },
  env: process.env,
  cwd: process.cwd(),
  isTTY: process.stdout.isTTY === true,
  get interrupted() {
    install();
    interrupted ??= new Promise<NodeJS.Signals>((resolve) => {
      interruptedResolve = resolve;
    });
    return interrupted;
  },
  onSignal(listener) {
    install();
    listeners.add(listener);
    return () => listeners.delete(listener);
  },
};

let code: number;
try {
  // Like the apps: `.env` in the working directory, never overriding the environment.
  loadDotEnv();
  code = await runCli(process.argv.slice(2), io);
} catch (e) {
  const message = e instanceof ConfigError ? e.problems.join("; ") : errorMessage(e);
  process.stderr.write(`error: ${message}\n`);
  code = 2;
}
process.exitCode = code;
// Sockets are closed by then; anything still pending (a stuck socket) must not hold the exit.
const exitTimer = setTimeout(() => process.exit(code), 2000);
exitTimer.unref();
