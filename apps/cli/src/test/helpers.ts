/**
 * Helpers of the CLI's own tests (the bin itself is run with `runCli` from `@cdktr/test-utils`;
 * the CLI against real principals and agents is tested in e2e/src/cli).
 */
import { fileURLToPath } from "node:url";

/** Repository root. */
export const REPO = fileURLToPath(new URL("../../../../", import.meta.url));

/** Non-empty lines of a text. */
export function lines(text: string): string[] {
  return text.split("\n").filter((l) => l.trim() !== "");
}
