/**
 * The live side of the dashboard: one subscription to the principal's publish channel, fanned
 * out to the browsers' server-sent-event streams.
 *
 * - `runs|` and `tasks|` are subscribed for as long as the hub runs; `logs|<wf>|<run>|` while at
 *   least one stream watches that run (unsubscribed when the last one leaves).
 * - Each message is parsed once and serialised once, then written to every stream that wants it.
 * - Bounded: at most `maxStreams` streams (more get 503), and a stream whose socket holds more
 *   than `maxBufferedBytes` unsent (a slow or stalled browser) is closed: EventSource reconnects
 *   by itself and the page refetches.
 * - After every (re)connection to the publisher (a principal restart, a new leader) every stream
 *   gets a `reset` event: what was published meanwhile is lost, the page refetches what it shows.
 * - A `: ping` comment every `pingMs` keeps proxies and idle timeouts from closing streams.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  LogLineSchema,
  RunEventSchema,
  Subscriber,
  TaskEventSchema,
  errorMessage,
  topics,
  type ClientKey,
  type Logger,
  type PrincipalClient,
} from "@cdktr/protocol";
import { httpErrors } from "../http/respond.js";

/** Options of {@link LiveHub}. */
export interface LiveHubOptions {
  principal: PrincipalClient;
  /** The publish endpoint to start with (the leader's is followed afterwards). */
  publishEndpoint: string;
  key: ClientKey | null;
  logger: Logger;
  maxStreams: number;
  /** @default 15000 */
  pingMs?: number;
  /** @default 1 MiB */
  maxBufferedBytes?: number;
}

interface Stream {
  readonly res: ServerResponse;
  /** Null: every run (`/api/events`); else the one run watched. */
  readonly runId: string | null;
  readonly logTopic: string | null;
  closed: boolean;
}

/** See the file's comment. */
export class LiveHub {
  readonly #opts: LiveHubOptions;
  readonly #all = new Set<Stream>();
  readonly #byRun = new Map<string, Set<Stream>>();
  readonly #logTopics = new Map<string, number>();
  readonly #pingMs: number;
  readonly #maxBuffered: number;
  #subscriber: Subscriber | null = null;
  #ping: NodeJS.Timeout | null = null;
  #unwatch: (() => void) | null = null;
  #stopped = false;
  /** How many times the subscriber (re)connected. */
  #connections = 0;

  constructor(opts: LiveHubOptions) {
    this.#opts = opts;
    this.#pingMs = opts.pingMs ?? 15_000;
    this.#maxBuffered = opts.maxBufferedBytes ?? 1024 * 1024;
  }

  /** Streams open now. */
  get streams(): number {
    let n = this.#all.size;
    for (const set of this.#byRun.values()) n += set.size;
    return n;
  }

  /** Times the subscription connected to a publisher (each one sent `reset` to every stream). */
  get connections(): number {
    return this.#connections;
  }

  /** Connect the subscription and start the pings. */
  start(): void {
    const log = this.#opts.logger;
    const sub = new Subscriber({
      endpoint: this.#opts.principal.leader?.publish ?? this.#opts.publishEndpoint,
      key: this.#opts.key,
      logger: log,
      onConnect: (endpoint) => {
        this.#connections++;
        log.info("subscribed to the principal's events", { endpoint, connection: this.#connections });
        this.#broadcast(frame("reset", {}), () => true);
      },
    });
    this.#subscriber = sub;
    sub.connect();
    sub.subscribe(topics.runs(), topics.tasks());
    this.#unwatch = this.#opts.principal.onLeaderChange((l) => sub.moveTo(l.publish));
    this.#ping = setInterval(() => this.#broadcast(": ping\n\n", () => true), this.#pingMs);
    this.#ping.unref();
    void this.#receive(sub);
  }

  async #receive(sub: Subscriber): Promise<void> {
    try {
      for await (const { topic, body } of sub) this.#dispatch(topic, body);
    } catch (e) {
      if (!this.#stopped) this.#opts.logger.error("the event subscription failed", { error: errorMessage(e) });
    }
  }

  #dispatch(topic: string, body: unknown): void {
    if (topic.startsWith("runs|")) {
      const p = RunEventSchema.safeParse(body);
      if (!p.success) return;
      const runId = p.data.run.runId;
      this.#broadcast(frame("run", p.data.run), (s) => s.runId === null || s.runId === runId, runId);
    } else if (topic.startsWith("tasks|")) {
      const p = TaskEventSchema.safeParse(body);
      if (!p.success) return;
      const runId = p.data.task.runId;
      this.#broadcast(frame("task", p.data), (s) => s.runId === null || s.runId === runId, runId);
    } else if (topic.startsWith("logs|")) {
      const p = LogLineSchema.safeParse(body);
      if (!p.success) return;
      const watchers = this.#byRun.get(p.data.runId);
      if (watchers === undefined) return;
      const f = frame("log", p.data);
      for (const s of watchers) this.#write(s, f);
    }
  }

  /** Write `text` to the streams `want` accepts (all streams, or those of `runId` and the global ones). */
  #broadcast(text: string, want: (s: Stream) => boolean, runId?: string): void {
    for (const s of this.#all) if (want(s)) this.#write(s, text);
    if (runId !== undefined) {
      for (const s of this.#byRun.get(runId) ?? []) this.#write(s, text);
      return;
    }
    for (const set of this.#byRun.values()) for (const s of set) if (want(s)) this.#write(s, text);
  }

  #write(s: Stream, text: string): void {
    if (s.closed) return;
    if (s.res.writableLength > this.#maxBuffered) {
      this.#opts.logger.warn("closing a live stream that does not keep up", {
        runId: s.runId,
        buffered: s.res.writableLength,
      });
      this.#close(s);
      s.res.destroy();
      return;
    }
    s.res.write(text);
  }

  /**
   * Open a stream on `res`: every run (`run` null) or one run (its `workflowId` and `runId`, whose
   * log lines are subscribed to while the stream lasts).
   * @throws HttpError 503 beyond `maxStreams`, or once stopped
   */
  open(req: IncomingMessage, res: ServerResponse, run: { workflowId: string; runId: string } | null): void {
    if (this.#stopped) throw httpErrors.unavailable("SHUTTING_DOWN", "the dashboard is stopping");
    if (this.streams >= this.#opts.maxStreams)
      throw httpErrors.unavailable(
        "TOO_MANY_STREAMS",
        `too many live streams are open (${this.#opts.maxStreams}, CDKTR_DASHBOARD_MAX_STREAMS): try again later`,
      );
    const logTopic = run === null ? null : topics.logs(run.workflowId, run.runId);
    const s: Stream = { res, runId: run?.runId ?? null, logTopic, closed: false };
    res.writeHead(200, {
      "Content-Type": "text/event-stream; charset=utf-8",
      "Cache-Control": "no-store",
      Connection: "keep-alive",
      "X-Accel-Buffering": "no",
    });
    res.write("retry: 2000\n: connected\n\n");
    req.socket.setNoDelay(true);
    if (run === null) this.#all.add(s);
    else {
      let set = this.#byRun.get(run.runId);
      if (set === undefined) {
        set = new Set();
        this.#byRun.set(run.runId, set);
      }
      set.add(s);
      if (logTopic !== null) {
        const n = this.#logTopics.get(logTopic) ?? 0;
        this.#logTopics.set(logTopic, n + 1);
        if (n === 0) this.#subscriber?.subscribe(logTopic);
      }
    }
    const done = (): void => this.#close(s);
    res.on("close", done);
    res.on("error", done);
  }

  #close(s: Stream): void {
    if (s.closed) return;
    s.closed = true;
    if (s.runId === null) {
      this.#all.delete(s);
      return;
    }
    const set = this.#byRun.get(s.runId);
    set?.delete(s);
    if (set !== undefined && set.size === 0) this.#byRun.delete(s.runId);
    if (s.logTopic !== null) {
      const n = (this.#logTopics.get(s.logTopic) ?? 1) - 1;
      if (n > 0) this.#logTopics.set(s.logTopic, n);
      else {
        this.#logTopics.delete(s.logTopic);
        this.#subscriber?.unsubscribe(s.logTopic);
      }
    }
  }

  /** Log topics subscribed now (for tests and metrics). */
  get logSubscriptions(): number {
    return this.#logTopics.size;
  }

  /** End every stream and close the subscription; idempotent. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#ping !== null) clearInterval(this.#ping);
    this.#unwatch?.();
    const streams = [...this.#all, ...[...this.#byRun.values()].flatMap((set) => [...set])];
    for (const s of streams) {
      this.#close(s);
      s.res.end();
    }
    this.#subscriber?.close();
    this.#subscriber = null;
  }
}

/** One server-sent event. */
function frame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
