/**
 * Errors of the agent process itself (wire errors use `CdktrError` from `@cdktr/protocol`).
 */

/** Stable codes of {@link AgentStartError}. */
export type AgentStartErrorCode = "DATA_DIR_LOCKED" | "DATA_DIR_UNUSABLE";

/** The agent cannot start; `main` prints the message and exits with code 2. */
export class AgentStartError extends Error {
  readonly code: AgentStartErrorCode;
  readonly context: Readonly<Record<string, unknown>>;

  constructor(
    code: AgentStartErrorCode,
    message: string,
    options: { cause?: unknown; context?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "AgentStartError";
    this.code = code;
    this.context = options.context ?? {};
  }
}
