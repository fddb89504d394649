/**
 * Entry point of every app that `cdktr start all` runs: `node child.js <app main.js>`.
 *
 * Each app runs in its own process group (so a terminal's Ctrl-C reaches only the supervisor,
 * which forwards it exactly once). The price is that when the supervisor itself dies without
 * cleaning up (SIGKILL, OOM killer), nothing would stop the apps. So this wrapper watches the
 * supervisor (pid in `CDKTR_SUPERVISOR_PID`) and, once it is gone, sends the app SIGTERM: the
 * app's own graceful stop runs (agents finish or cancel their tasks and report to the
 * principal). If the app has not exited {@link FORCE_AFTER_MS} later, a second SIGTERM forces it.
 */
import { pathToFileURL } from "node:url";

/** How often the supervisor's pid is checked. */
const POLL_MS = 500;
/** Time between the graceful SIGTERM and the forcing one, once the supervisor is gone. */
const FORCE_AFTER_MS = 60_000;

/** Whether process `pid` still exists (EPERM: the pid was reused by another user's process). */
function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false; // ESRCH: gone; EPERM: the pid now belongs to someone else
  }
}

const main = process.argv[2];
if (main === undefined) {
  process.stderr.write("usage: node child.js <app main.js> (run by `cdktr start all`)\n");
  process.exit(2);
}
const given = Number(process.env.CDKTR_SUPERVISOR_PID);
const supervisor = Number.isSafeInteger(given) && given > 1 ? given : process.ppid;
// Not the app's business, nor its tasks'.
delete process.env.CDKTR_SUPERVISOR_PID;

// Once the supervisor is gone, our stdout/stderr pipes have no reader: a write must not crash
// the app in the middle of its graceful stop.
const ignoreBrokenPipe = (e: NodeJS.ErrnoException): void => {
  if (e.code !== "EPIPE") throw e;
};
process.stdout.on("error", ignoreBrokenPipe);
process.stderr.on("error", ignoreBrokenPipe);

const watch = setInterval(() => {
  if (exists(supervisor)) return;
  clearInterval(watch);
  process.kill(process.pid, "SIGTERM");
  setTimeout(() => process.kill(process.pid, "SIGTERM"), FORCE_AFTER_MS).unref();
}, POLL_MS);
watch.unref();

// The app's main reads its own argv: hide ours from it.
process.argv.splice(2);
await import(pathToFileURL(main).href);
