/**
 * Ordered, persistent queue of run and task status updates for the principal.
 */
import { renameSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { isCdktrError, toCdktrError, type Logger, type RequestOf, type ApiVerbs } from "@cdktr/protocol";

/** One status update, as sent. */
export type StatusUpdate =
  | { verb: "runStatus"; body: RequestOf<ApiVerbs, "runStatus"> }
  | { verb: "taskStatus"; body: RequestOf<ApiVerbs, "taskStatus"> };

/** Sends one update; rejects with a `CdktrError` on failure. */
export type StatusSink = (update: StatusUpdate) => Promise<void>;

/** Options of {@link StatusOutbox}. */
export interface StatusOutboxOptions {
  sink: StatusSink;
  /** Directory where the pending queue is persisted (`outbox.json`). */
  dataDir: string;
  logger: Logger;
  /** Called when the principal says it does not know this agent (`AGENT_NOT_REGISTERED`). */
  onNotRegistered?: () => void;
  /** Waits for log lines up to a mark to be acknowledged (see `LogShipper.whenAcked`). */
  whenLogsAcked?: (mark: number) => Promise<void>;
  /** Updates left by a previous process wait for this first (its spooled log lines resent). */
  whenPreviousLogsSent?: () => Promise<void>;
  /** @default 100 */
  retryBaseMs?: number;
  /** @default 2000 */
  retryMaxMs?: number;
}

interface Item {
  update: StatusUpdate;
  /** Deliver only after the log lines up to this mark were acknowledged (not persisted). */
  afterLogMark: number;
  onDone: (() => void) | null;
  /** Left by a previous agent process (sent under that process's agent id). */
  legacy: boolean;
}

/**
 * Delivers status updates one at a time, in the order they were queued, retrying while the
 * principal is unreachable. Each update keeps the agent-clock time of the transition it
 * reports. The pending queue is persisted in the data directory, so updates queued by an agent
 * process that died are delivered by the next one.
 */
export class StatusOutbox {
  readonly #o: StatusOutboxOptions;
  readonly #file: string;
  #queue: Item[] = [];
  #wake: (() => void) | null = null;
  #stopped = false;
  #loop: Promise<void> | null = null;
  #delay: number;

  constructor(options: StatusOutboxOptions) {
    this.#o = options;
    this.#file = join(options.dataDir, "outbox.json");
    this.#delay = options.retryBaseMs ?? 100;
  }

  /** Updates waiting to be delivered. */
  get pending(): number {
    return this.#queue.length;
  }

  /** Runs whose final `runStatus` is queued but not delivered yet (including a previous process's). */
  pendingRunIds(): string[] {
    const ids = new Set<string>();
    for (const i of this.#queue) if (i.update.verb === "runStatus") ids.add(i.update.body.runId);
    return [...ids];
  }

  /** Load updates left by a previous agent process and start delivering. */
  start(): void {
    if (this.#loop !== null) return;
    try {
      const left = JSON.parse(readFileSync(this.#file, "utf8")) as StatusUpdate[];
      if (Array.isArray(left) && left.length > 0) {
        this.#o.logger.info("delivering status updates left by a previous agent process", { updates: left.length });
        this.#queue.push(...left.map((update) => ({ update, afterLogMark: 0, onDone: null, legacy: true })));
      }
    } catch {
      /* no file, or unreadable: nothing to resend */
    }
    this.#loop = this.#run();
  }

  /**
   * Queue an update. `onDone` runs once it was delivered (or refused for good).
   * @param afterLogMark deliver only after log lines up to this mark were acknowledged
   */
  push(update: StatusUpdate, options: { afterLogMark?: number; onDone?: () => void } = {}): void {
    this.#queue.push({ update, afterLogMark: options.afterLogMark ?? 0, onDone: options.onDone ?? null, legacy: false });
    this.#persist();
    this.#wake?.();
  }

  /** Wait until the queue is empty, at most `timeoutMs`. */
  async flush(timeoutMs: number): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (this.#queue.length > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    return this.#queue.length === 0;
  }

  /** Stop delivering; what is left stays persisted for the next agent process. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#loop;
    this.#persist();
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      const item = this.#queue[0];
      if (item === undefined) {
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
        this.#wake = null;
        continue;
      }
      if (item.legacy && this.#o.whenPreviousLogsSent !== undefined) {
        await Promise.race([this.#o.whenPreviousLogsSent(), this.#stoppedPromise()]);
        if (this.#stopped) break;
      }
      if (item.afterLogMark > 0 && this.#o.whenLogsAcked !== undefined) {
        await Promise.race([this.#o.whenLogsAcked(item.afterLogMark), this.#stoppedPromise()]);
        if (this.#stopped) break;
        item.afterLogMark = 0;
      }
      try {
        await this.#o.sink(item.update);
        this.#done();
        this.#delay = this.#o.retryBaseMs ?? 100;
      } catch (e: unknown) {
        const err = toCdktrError(e);
        if (err.code === "AGENT_NOT_REGISTERED" && !item.legacy) {
          this.#o.onNotRegistered?.();
        } else if (!err.retryable && err.code !== "CLOSED") {
          this.#o.logger.warn("the principal refused a status update; dropping it", {
            verb: item.update.verb,
            runId: item.update.body.runId,
            status: item.update.body.status,
            code: err.code,
            error: err.message,
          });
          this.#done();
          continue;
        }
        await this.#sleep(this.#delay);
        this.#delay = Math.min(this.#o.retryMaxMs ?? 2000, this.#delay * 2);
      }
    }
  }

  #done(): void {
    const item = this.#queue.shift();
    this.#persist();
    item?.onDone?.();
  }

  #persist(): void {
    try {
      if (this.#queue.length === 0) {
        rmSync(this.#file, { force: true });
        return;
      }
      const tmp = `${this.#file}.tmp`;
      writeFileSync(tmp, JSON.stringify(this.#queue.map((i) => i.update)));
      renameSync(tmp, this.#file);
    } catch (e: unknown) {
      this.#o.logger.warn("cannot persist pending status updates", { error: String(e) });
    }
  }

  #stoppedPromise(): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.#stopped) resolve();
        else setTimeout(check, 50).unref();
      };
      check();
    });
  }

  #sleep(ms: number): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.#wake = () => {
        if (this.#stopped) {
          clearTimeout(t);
          resolve();
        }
      };
    });
  }
}
