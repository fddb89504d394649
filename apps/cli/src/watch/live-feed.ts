import {
  LogLineSchema,
  RunEventSchema,
  Subscriber,
  TaskEventSchema,
  type ClientKey,
  type LeaderWatch,
  type LogLine,
  type Logger,
  type RunRecord,
  type TaskRunRecord,
} from "@cdktr/protocol";

/** One parsed publication of the principal. */
export type FeedEvent =
  | { readonly kind: "run"; readonly run: RunRecord }
  | { readonly kind: "task"; readonly workflowId: string; readonly task: TaskRunRecord }
  | { readonly kind: "log"; readonly line: LogLine };

/**
 * A subscription to the principal's publish channel that parses run, task and log events and
 * hands them to `onEvent`. Malformed publications are skipped.
 */
export class LiveFeed {
  readonly #sub: Subscriber;
  #closed = false;
  readonly #done: Promise<void>;
  readonly #unwatch: () => void;

  constructor(options: {
    endpoint: string;
    topics: readonly string[];
    onEvent: (e: FeedEvent) => void;
    logger?: Logger;
    /** The subscriber's key; null for plaintext. @default the local operator key (or CDKTR_KEY_FILE) */
    key?: ClientKey | null;
    /**
     * Several principals: move to each new leader's publish endpoint (what the old one published
     * in between is missed: the watchers' polling fills the gap from the store). @default none
     */
    leaderWatch?: LeaderWatch | undefined;
  }) {
    const sub = new Subscriber({
      endpoint: options.endpoint,
      ...(options.logger ? { logger: options.logger } : {}),
      ...(options.key === undefined ? {} : { key: options.key }),
    });
    this.#sub = sub;
    sub.connect();
    if (options.topics.length > 0) sub.subscribe(...options.topics);
    this.#unwatch = options.leaderWatch?.onChange((l) => sub.moveTo(l.publish)) ?? (() => undefined);
    const onEvent = options.onEvent;
    this.#done = (async () => {
      try {
        for await (const msg of sub) {
          if (this.#closed) break;
          const e = parseEvent(msg.topic, msg.body);
          if (e !== undefined) onEvent(e);
        }
      } catch {
        // the feed is best effort: polling reconciles whatever it misses
      }
    })();
  }

  /** Receive these topic prefixes too (from now on: what was published before is not replayed). */
  subscribe(...topics: string[]): void {
    if (!this.#closed && topics.length > 0) this.#sub.subscribe(...topics);
  }

  /** Stop receiving. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unwatch();
    this.#sub.close();
    await Promise.race([this.#done, new Promise((r) => setTimeout(r, 200).unref())]);
  }
}

/** Parse one publication by its topic family; undefined when it is not a valid event. */
export function parseEvent(topic: string, body: unknown): FeedEvent | undefined {
  if (topic.startsWith("runs|")) {
    const r = RunEventSchema.safeParse(body);
    return r.success ? { kind: "run", run: r.data.run } : undefined;
  }
  if (topic.startsWith("tasks|")) {
    const r = TaskEventSchema.safeParse(body);
    return r.success ? { kind: "task", workflowId: r.data.workflowId, task: r.data.task } : undefined;
  }
  if (topic.startsWith("logs|")) {
    const r = LogLineSchema.safeParse(body);
    return r.success ? { kind: "log", line: r.data } : undefined;
  }
  return undefined;
}
