/**
 * Debian's headless Chromium driven through playwright-core (a browser download cannot work on
 * these machines), for the dashboard's browser tests and the bench.
 */
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

/** Where Debian's `chromium` package puts the browser (`CDKTR_CHROMIUM` overrides it). */
export const CHROMIUM_PATH = process.env.CDKTR_CHROMIUM ?? "/usr/bin/chromium";

/**
 * Why the browser tests cannot run here, or null when they can. With `CI` set a missing browser
 * is a failure (`.ci/run` installs it), so the tests never skip there.
 */
export function browserMissing(): string | null {
  if (existsSync(CHROMIUM_PATH)) return null;
  const why = `no Chromium at ${CHROMIUM_PATH}: install Debian's \`chromium\` package (apt-get install chromium) or set CDKTR_CHROMIUM`;
  if (process.env.CI !== undefined && process.env.CI !== "")
    throw new Error(`${why} (CI is set: the browser tests must run)`);
  return why;
}

/**
 * Launch headless Chromium with the flags that keep it off the network it cannot reach (no
 * background networking, component updates or sync) and, as root, without the sandbox.
 */
export function launchChromium(): Promise<Browser> {
  const args = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
  ];
  if (process.getuid?.() === 0) args.push("--no-sandbox");
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args });
}
