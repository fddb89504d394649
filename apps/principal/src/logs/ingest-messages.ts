/**
 * What the principal's main thread and its log-ingest thread (`log-ingest-worker.ts`) tell each
 * other. Plain, structured-cloneable data only.
 */
import type { MessagePort } from "node:worker_threads";
import type { API_VERBS, KeyIdentity, KeyPair, LogLine, ProvenTopics, ReplyOf, WireError } from "@cdktr/protocol";

/** The `ping` reply of the principal without its `time` (the thread adds it per reply). */
export type PingState = Omit<ReplyOf<typeof API_VERBS, "ping">, "time">;

/**
 * The main thread's state the log thread answers from; pushed whenever a part changes (parts left
 * out are unchanged).
 */
export interface IngestState {
  ping?: PingState;
  /** What `logBatch` is refused with now (this principal does not lead, or its term is starting); null: accepted. */
  refusal?: WireError | null;
  /** The ACTIVE agents: id, key, registered. */
  agents?: [agentId: string, keyName: string | null, registered: boolean][];
}

/** `workerData` of the log-ingest thread. */
export interface IngestWorkerData {
  /** The main SQLite file, read for the leases of the runs whose lines arrive. */
  dbPath: string;
  /** The log database the thread writes (opened and migrated by the main thread first). */
  logsPath: string;
  /** The log database's write-lock turns shared with the main thread (`store/sqlite/write-turns.ts`). */
  turns: SharedArrayBuffer;
  /** Where to bind (the resolved endpoint when the thread is restarted). */
  endpoint: string;
  serverId: string;
  version: string;
  maxMessageBytes: number;
  maxInFlightPerPeer: number;
  maxInFlightPerKey: number;
  maxPendingLines: number;
  maxPendingBytes: number;
  /**
   * With authentication: the principal's CURVE pair, the ZAP domain the main thread registered
   * for the socket, and the keys admitted now.
   */
  auth: { keyPair: KeyPair; zapDomain: string; keys: KeyIdentity[] } | null;
  /**
   * Where {@link IngestUpdate}s arrive. The thread reads it synchronously (`receiveMessageOnPort`)
   * right before it uses what they change: an enrolment or revocation is sent before it is
   * answered, so it holds on the log port at once; a newly proven topic before any line it matches.
   */
  updates: MessagePort;
  /** The `ping` reply when the thread starts. */
  ping: PingState;
  state: IngestState;
}

/** Main thread -> log thread, on the {@link IngestWorkerData.updates} port. */
export interface IngestUpdate {
  /** Every key admitted now. */
  keys?: KeyIdentity[];
  /** The topics proven on the publish socket now; null: every topic is wanted (no gate). */
  proven?: ProvenTopics | null;
}

/** Main thread -> log thread. */
export type ToIngest = { type: "state"; state: IngestState } | { type: "close" };

/** Log thread -> main thread. */
export type FromIngest =
  | { type: "bound"; endpoint: string }
  | { type: "bindFailed"; message: string }
  /** Agents that sent batches (signs of life), batched. */
  | { type: "touch"; agentIds: string[] }
  /** Log lines received and not yet stored (sent when it changed, at most every 100 ms). */
  | { type: "backlog"; lines: number }
  /** Lines newly stored (`stored`), and those of them some subscriber may want (`lines`). */
  | { type: "publish"; lines: LogLine[]; stored: number }
  | { type: "log"; level: "debug" | "info" | "warn" | "error"; message: string; meta: Record<string, unknown> }
  /** The thread's own problems (e.g. `"disk full"`), whenever they change. */
  | { type: "problems"; problems: string[] }
  | { type: "closed" };
