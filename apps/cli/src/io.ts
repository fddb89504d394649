/**
 * Where the CLI writes and what it knows about its terminal. Commands never touch `process`
 * directly: `main.ts` builds the real {@link CliIo}, tests pass their own.
 */

/** A sink the CLI writes text to. */
export interface TextSink {
  write(text: string): void;
}

/** Everything the CLI needs from its environment. */
export interface CliIo {
  readonly stdout: TextSink;
  readonly stderr: TextSink;
  /** Environment variables (`CDKTR_*`, `NO_COLOR`, `HOME`). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Working directory relative paths are resolved against. */
  readonly cwd: string;
  /** Whether stdout is a terminal (tables get colour, progress redraws). */
  readonly isTTY: boolean;
  /** Resolves when the user asks to stop (first SIGINT/SIGTERM); never resolves in tests by default. */
  readonly interrupted: Promise<NodeJS.Signals>;
  /** Subscribe to every stop signal (for forwarding them to child processes). */
  onSignal(listener: (signal: NodeJS.Signals) => void): () => void;
}

/** Whether output to this terminal should be coloured: a TTY, and `NO_COLOR` unset or empty. */
export function colorEnabled(io: Pick<CliIo, "isTTY" | "env">): boolean {
  if (!io.isTTY) return false;
  const noColor = io.env.NO_COLOR;
  if (noColor !== undefined && noColor !== "") return false;
  if (io.env.TERM === "dumb") return false;
  return true;
}

/** An in-memory {@link CliIo} (used by tests and by embedding callers). */
export function bufferIo(
  options: { env?: Record<string, string | undefined>; cwd?: string; isTTY?: boolean } = {},
): CliIo & {
  readonly out: () => string;
  readonly err: () => string;
} {
  let out = "";
  let err = "";
  return {
    stdout: {
      write: (t) => {
        out += t;
      },
    },
    stderr: {
      write: (t) => {
        err += t;
      },
    },
    env: options.env ?? {},
    cwd: options.cwd ?? process.cwd(),
    isTTY: options.isTTY ?? false,
    interrupted: new Promise<NodeJS.Signals>(() => undefined),
    onSignal: () => () => undefined,
    out: () => out,
    err: () => err,
  };
}
