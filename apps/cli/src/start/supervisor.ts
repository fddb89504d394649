import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { CliError } from "../errors.js";
import type { CliIo } from "../io.js";
import type { Style } from "../format/style.js";
import { escapeControl } from "../format/terminal-text.js";

/** One app run by {@link Supervisor}. */
interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  ready: Record<string, unknown> | undefined;
  readonly readyWaiters: ((r: Record<string, unknown>) => void)[];
}

const COLORS = ["cyan", "magenta", "blue", "green", "yellow"] as const;

/** The wrapper every child runs in: it stops the app when the supervisor dies (see child.ts). */
const CHILD_ENTRY = fileURLToPath(new URL("./child.js", import.meta.url));

/**
 * Runs apps as child processes for `cdktr start all`: each in its own process group (so a
 * terminal's Ctrl-C reaches only us and is forwarded exactly once), output prefixed by app name,
 * readiness from each app's JSON `ready` log line. Each child runs under `child.js`, which
 * stops its app when this process dies without stopping it (e.g. SIGKILL).
 */
export class Supervisor {
  readonly #io: CliIo;
  readonly #style: Style;
  readonly #children: Child[] = [];
  readonly #width: number;
  #stopping = false;
  /** Children already asked to stop: a second signal would force them. */
  readonly #asked = new Set<Child>();
  /**
   * How the apps' log lines are shown: readable (`CDKTR_LOG_FORMAT=pretty`, or unset on a
   * terminal) or as the JSON they write (`json`, or unset elsewhere).
   */
  readonly #pretty: boolean;

  constructor(io: CliIo, style: Style, names: readonly string[]) {
    this.#io = io;
    this.#style = style;
    this.#width = Math.max(...names.map((n) => n.length), 5);
    const format = io.env.CDKTR_LOG_FORMAT?.trim().toLowerCase();
    this.#pretty = format === "pretty" || (format !== "json" && io.isTTY);
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  /** Write a line of our own, prefixed `[cdktr]`. */
  say(text: string): void {
    this.#io.stdout.write(`${this.#prefix("cdktr", "bold")} ${text}\n`);
  }

  #prefix(name: string, color: (typeof COLORS)[number] | "bold"): string {
    const label = `[${name}]`.padEnd(this.#width + 2);
    return this.#style[color](label);
  }

  /** Start `script` under `name` with `env`. */
  start(name: string, script: string, env: Record<string, string | undefined>): Child {
    const color = COLORS[this.#children.length % COLORS.length] ?? "cyan";
    const proc = spawn(process.execPath, [CHILD_ENTRY, script], {
      cwd: this.#io.cwd,
      // JSON from every app: readiness comes from its `ready` record, and this process shows
      // the lines readably itself when asked to.
      env: { ...env, CDKTR_LOG_FORMAT: "json", CDKTR_SUPERVISOR_PID: String(process.pid) },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      proc.on("exit", (code, signal) => resolve({ code, signal }));
      proc.on("error", () => resolve({ code: 127, signal: null }));
    });
    const child: Child = { name, proc, exited, ready: undefined, readyWaiters: [] };
    this.#children.push(child);
    const prefix = this.#prefix(name, color);
    const onLine = (line: string): void => {
      const json = parseJson(line);
      if (json?.message === "ready" && child.ready === undefined) {
        child.ready = json;
        for (const w of child.readyWaiters.splice(0)) w(json);
      }
      // An app's output can carry a task's text: its control characters are shown escaped.
      this.#io.stdout.write(`${prefix} ${this.#pretty && json ? this.#prettyLine(json) : escapeControl(line)}\n`);
    };
    if (proc.stdout) createInterface({ input: proc.stdout }).on("line", onLine);
    if (proc.stderr) createInterface({ input: proc.stderr }).on("line", onLine);
    this.say(`${name} started (pid ${proc.pid ?? "?"})`);
    return child;
  }

  #prettyLine(j: Record<string, unknown>): string {
    const { level, message, time, timestamp, component: _c, ...rest } = j;
    const t = typeof time === "string" ? time : typeof timestamp === "string" ? timestamp : "";
    const lvl = escapeControl(typeof level === "string" ? level : "");
    const colored =
      lvl === "error" ? this.#style.red(lvl) : lvl === "warn" ? this.#style.yellow(lvl) : this.#style.dim(lvl);
    const extra = Object.keys(rest).length > 0 ? ` ${this.#style.dim(escapeControl(JSON.stringify(rest)))}` : "";
    return `${this.#style.dim(escapeControl(t.slice(11, 23)))} ${colored} ${escapeControl(String(message))}${extra}`;
  }

  /** Resolves with the child's `ready` record, or rejects when it exits first or `timeoutMs` passes. */
  waitReady(child: Child, timeoutMs: number): Promise<Record<string, unknown>> {
    if (child.ready !== undefined) return Promise.resolve(child.ready);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new CliError(`${child.name} did not become ready within ${timeoutMs / 1000} s`)),
        timeoutMs,
      );
      child.readyWaiters.push((r) => {
        clearTimeout(timer);
        resolve(r);
      });
      void child.exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new CliError(`${child.name} exited (${signal ?? `code ${code}`}) before it was ready`));
      });
    });
  }

  /** Resolves with the first child that exits. */
  firstExit(): Promise<{ name: string; code: number | null; signal: NodeJS.Signals | null }> {
    return Promise.race(this.#children.map((c) => c.exited.then((r) => ({ name: c.name, ...r }))));
  }

  /**
   * Ask every running child to stop (SIGTERM) and wait for all. The first app started (the
   * principal) is stopped last, so the others can still report their final states to it.
   * Each child is signalled at most once. Returns true when all of them exited cleanly (code 0).
   */
  async stopAll(signal: NodeJS.Signals = "SIGTERM"): Promise<boolean> {
    this.#stopping = true;
    const [first, ...rest] = this.#children;
    for (const c of rest.reverse()) this.#ask(c, signal);
    await Promise.all(rest.map((c) => c.exited));
    if (first !== undefined) this.#ask(first, signal);
    const results = await Promise.all(this.#children.map((c) => c.exited));
    return results.every((r) => r.code === 0);
  }

  #ask(c: Child, signal: NodeJS.Signals): void {
    if (c.proc.exitCode !== null || c.proc.signalCode !== null || this.#asked.has(c)) return;
    this.#asked.add(c);
    try {
      c.proc.kill(signal);
    } catch {
      /* already gone */
    }
  }

  /** SIGKILL every child's process group now. */
  killAll(): void {
    this.#stopping = true;
    for (const c of this.#children) {
      if (c.proc.pid === undefined) continue;
      try {
        process.kill(-c.proc.pid, "SIGKILL");
      } catch {
        /* already gone */
      }
    }
  }

  /** Wait for every child to exit. */
  async waitAll(): Promise<void> {
    await Promise.all(this.#children.map((c) => c.exited));
  }
}

function parseJson(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const v: unknown = JSON.parse(line);
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
