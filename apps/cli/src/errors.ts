/**
 * Errors the CLI shows to people: always one line, never a stack trace.
 */
import { CodedError, errorMessage, isCdktrError } from "@cdktr/protocol";

/** Codes of {@link CliError}: `CLI_USAGE` for exit code 2 (bad usage), `CLI_FAILED` otherwise. */
export type CliErrorCode = "CLI_USAGE" | "CLI_FAILED";

/** An error meant for the user, with the exit code the process should end with. */
export class CliError extends CodedError<CliErrorCode> {
  /** 1 = the operation failed, 2 = bad usage (arguments, options, files), 130 = interrupted. */
  readonly exitCode: number;
  constructor(message: string, exitCode = 1, options: { cause?: unknown } = {}) {
    super(exitCode === 2 ? "CLI_USAGE" : "CLI_FAILED", message, options);
    this.exitCode = exitCode;
  }
}

/** What the CLI was talking to, so error lines can name it. */
export interface ErrorContext {
  /** `host:port` of the principal's API. */
  principal?: string;
  /**
   * The name of the key the CLI spoke with; null when it found none although authentication is
   * not off. A principal with authentication on never answers a client without an enrolled key,
   * so unreachable errors then say so.
   */
  keyName?: string | null;
}

/**
 * The one line shown for `e`, and the exit code. Unreachable principals (TIMEOUT/UNAVAILABLE)
 * get the "start one with `cdktr start principal`" hint; server errors print their message
 * (which already says what to do); anything unexpected prints its message only.
 */
export function describeError(e: unknown, ctx: ErrorContext = {}): { message: string; exitCode: number } {
  if (e instanceof CliError) return { message: e.message, exitCode: e.exitCode };
  if (isCdktrError(e)) {
    const code = e.code;
    const message = errorMessage(e);
    if (code === "TIMEOUT" || code === "UNAVAILABLE" || code === "CLOSED") {
      const where = ctx.principal ?? "the configured address";
      return {
        message: `no principal at ${where}: start one with \`cdktr start principal\` (or point at it with --principal host:port / CDKTR_PRINCIPAL_HOST, CDKTR_PRINCIPAL_PORT)${keyHint(ctx.keyName)}`,
        exitCode: 1,
      };
    }
    return { message: firstLine(message), exitCode: code === "INVALID_PARAMS" || code === "BAD_REQUEST" ? 2 : 1 };
  }
  if (e instanceof Error) return { message: firstLine(e.message), exitCode: 1 };
  return { message: errorMessage(e), exitCode: 1 };
}

/** Why a principal may not answer: the CLI has no key, or one the principal does not know. */
function keyHint(keyName: string | null | undefined): string {
  if (keyName === undefined) return "";
  if (keyName === null)
    return "; a principal with authentication on answers only enrolled keys, and this cdktr has none: run it where the principal made its keys (same HOME or CDKTR_KEYS_DIR), or set CDKTR_KEY_FILE to a key file made with `cdktr keys create`";
  return `; if one runs there, it does not know key \`${keyName}\` (not enrolled, revoked, or made for another principal)`;
}

function firstLine(s: string): string {
  const lines = s
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");
  return lines.join("; ");
}
