import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { CliError } from "../errors.js";

/** Apps `cdktr start` can run. */
export const STARTABLE_APPS = ["principal", "agent", "scheduler", "listeners", "dashboard"] as const;
/** One of {@link STARTABLE_APPS}. */
export type StartableApp = (typeof STARTABLE_APPS)[number];

/**
 * Path of an app's built entry point (`dist/main.js` beside the package's `dist/index.js`).
 * @throws CliError when the app's package is not installed or not built (the message says which
 * command fixes it).
 */
export function appMainPath(app: StartableApp): string {
  let indexUrl: string;
  try {
    indexUrl = import.meta.resolve(`@cdktr/${app}`);
  } catch {
    throw new CliError(`@cdktr/${app} is not installed: run \`npm install\` at the repository root`, 1);
  }
  const main = fileURLToPath(new URL("./main.js", indexUrl));
  if (!existsSync(main)) throw new CliError(`${main} is missing: build first with \`npm run build\``, 1);
  return main;
}
