/**
 * Structured logging for cdktr services: winston writing one JSON object per line on stdout
 * (`{"level":"info","message":"ready","component":"principal",...,"time":"..."}`), or a readable
 * single line per record (with colours) on a TTY; `CDKTR_LOG_FORMAT` chooses either.
 */
import winston from "winston";

/** What every cdktr library and service logs through. Meta fields become JSON properties. */
export interface Logger {
  debug(message: string, meta?: object): void;
  info(message: string, meta?: object): void;
  warn(message: string, meta?: object): void;
  error(message: string, meta?: object): void;
  /** A logger that adds `meta` to every record (e.g. `{ runId }`). */
  child(meta: object): Logger;
}

/** Options of {@link createLogger}. */
export interface CreateLoggerOptions {
  /** Added to every record as `component` (e.g. `principal`, `agent`). */
  component: string;
  /**
   * Minimum level: `debug`, `info`, `warn` or `error`.
   * @default process.env.CDKTR_LOG_LEVEL ?? "info"
   */
  level?: string | undefined;
  /**
   * Human-readable lines instead of JSON.
   * @default `format` when given, else whether the stream is a TTY
   */
  pretty?: boolean | undefined;
  /**
   * `CDKTR_LOG_FORMAT`: `json` (one JSON object per line) or `pretty` (one readable line per
   * record); `pretty` wins over an unset `pretty` option. @default by TTY: pretty on a terminal
   */
  format?: LogFormat | undefined;
  /**
   * ANSI colours in pretty lines (level, time, component). @default on a TTY, unless `NO_COLOR`
   * is set or `TERM` is `dumb`
   */
  color?: boolean | undefined;
  /**
   * Where lines go (tests pass a stream to capture them).
   * @default process.stdout
   */
  stream?: NodeJS.WritableStream | undefined;
}

const LEVELS = { error: 0, warn: 1, info: 2, debug: 3 } as const;

/** The values of `CDKTR_LOG_FORMAT`. */
export const LOG_FORMATS = ["json", "pretty"] as const;
/** How log records are written: JSON lines, or readable lines. */
export type LogFormat = (typeof LOG_FORMATS)[number];

/** ANSI styles of pretty lines (SGR codes), when colours are on. */
const ANSI = { red: "31", yellow: "33", cyan: "36", dim: "2" } as const;
const paint = (on: boolean, style: keyof typeof ANSI, text: string): string =>
  on ? `\u001b[${ANSI[style]}m${text}\u001b[0m` : text;
const LEVEL_STYLE: Record<string, keyof typeof ANSI | null> = {
  error: "red",
  warn: "yellow",
  info: null,
  debug: "dim",
};

/** Make `value` JSON-safe: errors become `{ name, message, code?, stack }`. */
function plain(value: unknown): unknown {
  if (value instanceof Error) {
    const out: Record<string, unknown> = { name: value.name, message: value.message };
    const code = (value as { code?: unknown }).code;
    if (code !== undefined) out.code = code;
    if (value.stack !== undefined) out.stack = value.stack;
    return out;
  }
  if (typeof value === "bigint") return value.toString();
  return value;
}

function fields(info: winston.Logform.TransformableInfo): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(info)) {
    if (k === "level" || k === "message" || k === "time") continue;
    out[k] = plain(v);
  }
  return out;
}

const jsonLine = winston.format.printf((info) => {
  const { level, message } = info;
  const record = { level, message: String(message), ...fields(info), time: new Date().toISOString() };
  try {
    return JSON.stringify(record);
  } catch {
    return JSON.stringify({ level, message: String(message), time: record.time, note: "unserialisable meta" });
  }
});

/** One readable line per record: time, level, component, message, then the other fields as `k=v`. */
const prettyLine = (color: boolean) =>
  winston.format.printf((info) => {
    const { component, ...rest } = fields(info);
    const extra = Object.entries(rest)
      .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
      .join(" ");
    const time = new Date().toISOString().slice(11, 23);
    const style = LEVEL_STYLE[info.level] ?? null;
    const lvl = info.level.toUpperCase().padEnd(5);
    return `${paint(color, "dim", time)} ${style === null ? lvl : paint(color, style, lvl)} ${paint(color, "cyan", `[${typeof component === "string" ? component : "-"}]`)} ${String(info.message)}${extra === "" ? "" : ` ${paint(color, "dim", extra)}`}`;
  });

class WinstonLogger implements Logger {
  constructor(private readonly w: winston.Logger) {}
  // winston formats a record before its level filter drops it: skip disabled levels up front.
  debug(message: string, meta?: object): void {
    if (this.w.isLevelEnabled("debug")) this.w.debug(message, meta);
  }
  info(message: string, meta?: object): void {
    if (this.w.isLevelEnabled("info")) this.w.info(message, meta);
  }
  warn(message: string, meta?: object): void {
    this.w.warn(message, meta);
  }
  error(message: string, meta?: object): void {
    this.w.error(message, meta);
  }
  child(meta: object): Logger {
    return new WinstonLogger(this.w.child(meta));
  }
}

/**
 * A winston logger writing JSON lines to stdout (pretty lines on a TTY, or as `format` says).
 * An unknown `level` falls back to `info`.
 */
export function createLogger(opts: CreateLoggerOptions): Logger {
  const requested = (opts.level ?? process.env.CDKTR_LOG_LEVEL ?? "info").toLowerCase();
  const level = requested in LEVELS ? requested : "info";
  const stream = opts.stream ?? process.stdout;
  const tty = (stream as { isTTY?: boolean }).isTTY === true;
  const pretty = opts.pretty ?? (opts.format === undefined ? tty : opts.format === "pretty");
  const color = opts.color ?? (tty && (process.env.NO_COLOR ?? "") === "" && process.env.TERM !== "dumb");
  const w = winston.createLogger({
    levels: LEVELS,
    level,
    defaultMeta: { component: opts.component },
    format: pretty ? prettyLine(color) : jsonLine,
    transports: [new winston.transports.Stream({ stream })],
  });
  return new WinstonLogger(w);
}

class NoopLogger implements Logger {
  debug(): void {}
  info(): void {}
  warn(): void {}
  error(): void {}
  child(): Logger {
    return this;
  }
}

/** A logger that drops everything (the default of every library option). */
export const noopLogger: Logger = new NoopLogger();
