/**
 * ANSI styling that turns itself off: every function returns plain text when colour is off
 * (not a TTY, or `NO_COLOR` set).
 */

/** The styles the CLI uses. */
export interface Style {
  readonly enabled: boolean;
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  blue(s: string): string;
  cyan(s: string): string;
  magenta(s: string): string;
  /** Colour a run or task status by how it went. */
  status(s: string): string;
}

const wrap = (open: number, close: number) => (s: string) => `\u001b[${open}m${s}\u001b[${close}m`;

/** A {@link Style} that colours when `enabled`. */
export function createStyle(enabled: boolean): Style {
  const id = (s: string): string => s;
  const bold = enabled ? wrap(1, 22) : id;
  const dim = enabled ? wrap(2, 22) : id;
  const red = enabled ? wrap(31, 39) : id;
  const green = enabled ? wrap(32, 39) : id;
  const yellow = enabled ? wrap(33, 39) : id;
  const blue = enabled ? wrap(34, 39) : id;
  const magenta = enabled ? wrap(35, 39) : id;
  const cyan = enabled ? wrap(36, 39) : id;
  const status = (s: string): string => {
    switch (s) {
      case "COMPLETED":
      case "ACTIVE":
        return green(s);
      case "FAILED":
      case "CRASHED":
      case "LOST":
        return red(s);
      case "CANCELLED":
      case "SKIPPED":
        return yellow(s);
      case "RUNNING":
      case "ASSIGNED":
        return cyan(s);
      case "QUEUED":
      case "PENDING":
        return dim(s);
      default:
        return s;
    }
  };
  return { enabled, bold, dim, red, green, yellow, blue, cyan, magenta, status };
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escapes start with ESC
const ANSI = /\u001b\[[0-9;]*m/g;

/** `s` without ANSI escapes. */
export function stripAnsi(s: string): string {
  return s.replace(ANSI, "");
}

/** Printed width of `s` (ANSI escapes do not count). */
export function visibleLength(s: string): number {
  return [...stripAnsi(s)].length;
}
