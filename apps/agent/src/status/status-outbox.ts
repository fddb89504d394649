/**
 * Ordered, persistent queue of run and task status updates for the principal.
 */
import { backoffDelay, toCdktrError, type CdktrError, type Logger } from "@cdktr/protocol";
import { SyncBatch } from "../data-dir/sync-batch.js";
import { OutboxJournal } from "./outbox-journal.js";
import type { StatusSink, StatusUpdate } from "./status-update.js";

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
  /**
   * Waits for log lines up to a mark to survive a crash (acknowledged, or spooled and fsynced:
   * `LogShipper.whenDurable`). An update pushed with a mark is journaled only then, so a final
   * status on disk never outlives the lines it reports on. Absent: journaled at once.
   */
  whenLogsDurable?: (mark: number) => Promise<void>;
  /** Updates left by a previous process wait for this first (its spooled log lines resent). */
  whenPreviousLogsSent?: () => Promise<void>;
  /** First delay before resending an update (then doubling, with jitter: `backoffDelay`). @default 100 */
  retryBaseMs?: number;
  /** Largest delay between resends of an update. @default 2000 */
  retryMaxMs?: number;
  /** Updates (of different runs) sent at the same time. @default 32 */
  maxInFlight?: number;
  /** Where the journal is fsynced (batched with the agent's other records). @default one of its own */
  sync?: SyncBatch;
  /** Wait before writing the journal again after a failed write. @default 1000 */
  rewriteMs?: number;
  /** Free space at which a journal with nothing left to write counts as writable again. @default 65536 */
  probeFreeBytes?: number;
  /** Called each time the journal can be written again after a {@link StatusOutbox.problem} (the agent fetches again). */
  onWritable?: () => void;
}

interface Item {
  id: number;
  update: StatusUpdate;
  /** Deliver only after the log lines up to this mark were acknowledged (not persisted). */
  afterLogMark: number;
  onDone: (() => void) | null;
  /** Called (before `onDone`) when the principal refused it for good. */
  onRefused: ((err: CdktrError) => void) | null;
  /** Left by a previous agent process (sent under that process's agent id). */
  legacy: boolean;
  /** A delivery of this item is under way (waiting, sending or backing off). */
  busy: boolean;
  /** Its `a` line is in the journal (or queued to be written). */
  journaled: boolean;
  /** Never delivered: a previous process's run start, kept until the principal was told (see previousStarts). */
  held: boolean;
}

/** Rewrite the journal once it holds this many lines and four times the pending updates. */
const COMPACT_LINES = 1000;

/**
 * Delivers status updates in the order they were queued *per run*, retrying while the principal
 * is unreachable. Updates of different runs are independent and travel concurrently (up to
 * `maxInFlight`), so one run waiting for its log lines never holds up another's report. Each
 * update keeps the agent-clock time of the transition it reports.
 *
 * The pending queue is persisted in the data directory as an append-only journal
 * (`outbox.json`, one JSON line per queued or delivered update, removed when nothing is
 * pending), written before an update is sent and after it was acknowledged, so updates queued by
 * an agent process that died are delivered by the next one. Journal writes are fsynced once per
 * turn of the event loop (a `SyncBatch`), the directory too when the file is created, replaced
 * or removed (`OutboxJournal`). A write that fails (disk full) is cut back and tried again in
 * order every `rewriteMs` until it works; meanwhile {@link problem} says so, {@link writable} is
 * false (the agent pushes back) and delivery goes on from memory, in order.
 */
export class StatusOutbox {
  readonly #o: StatusOutboxOptions;
  /** Pending updates by id, in queue order. */
  readonly #queue = new Map<number, Item>();
  #nextId = 1;
  readonly #journal: OutboxJournal;
  readonly #sync: SyncBatch;
  #started = false;
  #stopped = false;
  #stoppedSignal: Promise<void>;
  #signalStopped: () => void = () => undefined;
  #pumpQueued = false;
  #sending = 0;
  readonly #slotWaiters: (() => void)[] = [];
  readonly #deliveries = new Set<Promise<void>>();
  readonly #sleepers = new Set<() => void>();
  readonly #maxInFlight: number;

  constructor(options: StatusOutboxOptions) {
    this.#o = options;
    this.#maxInFlight = Math.max(1, options.maxInFlight ?? 32);
    this.#sync = options.sync ?? new SyncBatch({ logger: options.logger });
    this.#journal = new OutboxJournal({
      dataDir: options.dataDir,
      logger: options.logger,
      sync: this.#sync,
      pending: () => [...this.#queue.values()].filter((i) => i.journaled),
      ...(options.rewriteMs === undefined ? {} : { rewriteMs: options.rewriteMs }),
      ...(options.probeFreeBytes === undefined ? {} : { probeFreeBytes: options.probeFreeBytes }),
      ...(options.onWritable === undefined ? {} : { onWritable: options.onWritable }),
    });
    this.#stoppedSignal = new Promise<void>((resolve) => {
      this.#signalStopped = resolve;
    });
  }

  /**
   * Why pending updates are not all on disk (the journal cannot be written: disk full...), or
   * null. They are still delivered from memory, but would be lost if the agent stopped now.
   */
  get problem(): string | null {
    return this.#journal.problem;
  }

  /**
   * False from the first journal write that fails until the journal can be written again. The
   * agent pushes back meanwhile: its tasks' output readers pause, no task attempt starts and no
   * new run is fetched, so that no more transitions pile up in memory only.
   */
  get writable(): boolean {
    return this.#journal.writable;
  }

  /** Resolves once {@link writable} (at once when it is), or once the outbox stopped. */
  whenWritable(): Promise<void> {
    return this.#journal.whenWritable();
  }

  /** Whether {@link start} read everything a previous agent process left (see `OutboxJournal.loadedAll`). */
  get loadedAll(): boolean {
    return this.#journal.loadedAll;
  }

  /** Updates waiting to be delivered. */
  get pending(): number {
    return this.#queue.size;
  }

  /** Runs whose final `runStatus` is queued but not delivered yet (including a previous process's). */
  pendingRunIds(): string[] {
    const ids = new Set<string>();
    for (const i of this.#queue.values()) if (i.update.verb === "runStatus") ids.add(i.update.body.runId);
    return [...ids];
  }

  /**
   * Load updates left by a previous agent process and start delivering them. Their run starts
   * (`confirmAssignment`) are not delivered (that process's runs died with it; the principal
   * learns which ones it started from the registration's `predecessor`): they stay in the journal
   * until {@link forgetPreviousStarts}, and {@link previousStarts} lists their runs.
   */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    const left = this.#journal.load();
    if (left.length > 0) {
      this.#o.logger.info("delivering status updates left by a previous agent process", { updates: left.length });
      for (const update of left) {
        const item = this.#add(update, 0, null, null, true);
        if (update.verb === "confirmAssignment") item.held = true;
      }
      this.#journal.compact();
    } else {
      this.#journal.remove();
    }
    this.#schedulePump();
  }

  /** Runs the previous agent process started without the principal acknowledging it (journal order). */
  previousStarts(): string[] {
    const ids: string[] = [];
    for (const i of this.#queue.values()) if (i.held) ids.push(i.update.body.runId);
    return ids;
  }

  /** The principal has been told of {@link previousStarts}: drop them from the journal. */
  forgetPreviousStarts(): void {
    for (const i of [...this.#queue.values()]) if (i.held) this.#done(i);
  }

  /**
   * Queue an update. `onDone` runs once it was delivered (or refused for good), `onRefused`
   * before it when it was refused. Returns the update's id (for {@link retract}).
   * @param afterLogMark deliver only after log lines up to this mark were acknowledged
   */
  push(
    update: StatusUpdate,
    options: { afterLogMark?: number; onDone?: () => void; onRefused?: (err: CdktrError) => void } = {},
  ): number {
    const mark = options.afterLogMark ?? 0;
    const item = this.#add(update, mark, options.onDone ?? null, options.onRefused ?? null, false);
    const durable = this.#o.whenLogsDurable;
    if (mark > 0 && durable !== undefined) {
      item.journaled = false;
      void durable(mark).then(() => {
        // Delivered meanwhile (the principal acknowledged its lines and the update): nothing to keep.
        if (item.journaled || !this.#queue.has(item.id)) return;
        item.journaled = true;
        this.#journal.append({ a: item.id, u: update });
      });
    } else {
      this.#journal.append({ a: item.id, u: update });
    }
    this.#schedulePump();
    return item.id;
  }

  /**
   * Take back an update pushed in this turn of the event loop, before any delivery began (its
   * journal line, if written, is cancelled by the next). Returns false when it is too late.
   */
  retract(id: number): boolean {
    const item = this.#queue.get(id);
    if (item === undefined || item.busy) return false;
    item.onDone = null;
    item.onRefused = null;
    this.#done(item);
    return true;
  }

  /** Wait until every update to deliver was delivered, at most `timeoutMs`. */
  async flush(timeoutMs: number): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    const left = (): boolean => [...this.#queue.values()].some((i) => !i.held);
    while (left() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    return !left();
  }

  /** Stop delivering; what is left stays persisted for the next agent process. */
  async stop(): Promise<void> {
    if (!this.#stopped) {
      this.#stopped = true;
      this.#signalStopped();
      for (const wake of [...this.#sleepers]) wake();
      for (const wake of this.#slotWaiters.splice(0)) wake();
    }
    while (this.#deliveries.size > 0) await Promise.allSettled([...this.#deliveries]);
    this.#journal.stop();
    this.#sync.now();
  }

  #add(
    update: StatusUpdate,
    afterLogMark: number,
    onDone: (() => void) | null,
    onRefused: ((err: CdktrError) => void) | null,
    legacy: boolean,
  ): Item {
    const item: Item = {
      id: this.#nextId++,
      update,
      afterLogMark,
      onDone,
      onRefused,
      legacy,
      busy: false,
      journaled: true,
      held: false,
    };
    this.#queue.set(item.id, item);
    return item;
  }

  #schedulePump(): void {
    if (this.#pumpQueued || !this.#started || this.#stopped) return;
    this.#pumpQueued = true;
    queueMicrotask(() => {
      this.#pumpQueued = false;
      this.#pump();
    });
  }

  /** Start delivering the oldest pending update of every run that has none under way. */
  #pump(): void {
    if (this.#stopped) return;
    const seen = new Set<string>();
    for (const item of this.#queue.values()) {
      if (item.held) continue;
      const runId = item.update.body.runId;
      if (seen.has(runId)) continue;
      seen.add(runId);
      if (item.busy) continue;
      item.busy = true;
      const delivery = this.#deliver(item).finally(() => {
        this.#deliveries.delete(delivery);
        item.busy = false;
        this.#schedulePump();
      });
      this.#deliveries.add(delivery);
    }
  }

  /** Deliver one item (retrying) until it is acknowledged, refused for good, or the outbox stops. */
  async #deliver(item: Item): Promise<void> {
    if (item.legacy && this.#o.whenPreviousLogsSent !== undefined) {
      await Promise.race([this.#o.whenPreviousLogsSent(), this.#stoppedSignal]);
    }
    if (item.afterLogMark > 0 && this.#o.whenLogsAcked !== undefined) {
      await Promise.race([this.#o.whenLogsAcked(item.afterLogMark), this.#stoppedSignal]);
      if (!this.#stopped) item.afterLogMark = 0;
    }
    const backoff = { initialMs: this.#o.retryBaseMs ?? 100, maxMs: this.#o.retryMaxMs ?? 2000 };
    for (let attempt = 1; !this.#stopped; attempt++) {
      await this.#acquireSlot();
      if (this.#stopped) {
        this.#releaseSlot();
        return;
      }
      try {
        await this.#o.sink(item.update);
        this.#done(item);
        return;
      } catch (e: unknown) {
        const err = toCdktrError(e);
        if (err.code === "AGENT_NOT_REGISTERED" && !item.legacy) {
          this.#o.onNotRegistered?.();
        } else if (!err.retryable && err.code !== "CLOSED") {
          this.#o.logger.warn("the principal refused a status update; dropping it", {
            verb: item.update.verb,
            runId: item.update.body.runId,
            ...("status" in item.update.body ? { status: item.update.body.status } : {}),
            code: err.code,
            error: err.message,
          });
          item.onRefused?.(err);
          this.#done(item);
          return;
        }
      } finally {
        this.#releaseSlot();
      }
      await this.#sleep(backoffDelay(attempt, backoff));
    }
  }

  #acquireSlot(): Promise<void> {
    if (this.#sending < this.#maxInFlight || this.#stopped) {
      this.#sending++;
      return Promise.resolve();
    }
    return new Promise((resolve) =>
      this.#slotWaiters.push(() => {
        this.#sending++;
        resolve();
      }),
    );
  }

  #releaseSlot(): void {
    this.#sending--;
    this.#slotWaiters.shift()?.();
  }

  #done(item: Item): void {
    if (!this.#queue.delete(item.id)) return;
    const journaled = item.journaled;
    item.journaled = true;
    if (this.#queue.size === 0) {
      this.#journal.remove();
    } else if (journaled) {
      this.#journal.append({ d: item.id });
      const lines = this.#journal.lines;
      if (lines >= COMPACT_LINES && lines >= 4 * this.#queue.size) this.#journal.compact();
    }
    item.onDone?.();
  }

  #sleep(ms: number): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(t);
        this.#sleepers.delete(wake);
        resolve();
      };
      const t = setTimeout(wake, ms);
      this.#sleepers.add(wake);
    });
  }
}
