/**
 * The principal's log-ingest thread (SQLite store): owns the log-ingest ROUTER and a writer
 * connection of its own to the log database (`store/sqlite/log-database.ts`), so that receiving,
 * parsing, validating and storing a flood of log lines happens off the main thread (and off its
 * heap: no garbage collection pause of the main thread comes from log batches), and its commits
 * never hold the write lock of the main file, where triggers and statuses are written. The main
 * thread keeps everything else; what this thread needs of its state (leadership, agents, keys,
 * proven subscriptions, the `ping` reply) arrives as {@link IngestState} messages, and what the
 * main thread needs back (signs of life of agents, lines to publish, log records, problems) goes
 * back as messages.
 * The main thread writes the log database rarely (retention); when it does, the two take turns
 * at its write lock (`write-turns.ts`): it waits at most for one ~2 ms piece of log inserts.
 */
import { parentPort, receiveMessageOnPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import {
  CdktrError,
  LOG_VERBS,
  ProvenTopicSet,
  RpcServer,
  UsageError,
  errorMessage,
  systemClock,
  topics,
  type KeyIdentity,
  type LogLine,
  type Logger,
} from "@cdktr/protocol";
import { checkAgentKey } from "../agents/agent-registry.js";
import { permitsVerb } from "../auth/roles.js";
import { storageFull } from "../errors.js";
import { GroupCommit } from "../store/sqlite/group-commit.js";
import { openLogDatabase } from "../store/sqlite/log-database.js";
import { insertLogLinesInPieces } from "../store/sqlite/log-writes.js";
import { LEADER_ONLY_LOG_VERBS, leaderGated } from "../leader/leader-gate.js";
import { Tables } from "../store/sqlite/tables.js";
import { logsWriteTurn } from "../store/sqlite/write-turns.js";
import type {
  FromIngest,
  IngestState,
  IngestUpdate,
  IngestWorkerData,
  PingState,
  ToIngest,
} from "./ingest-messages.js";
import { registerLogIngestHandlers } from "./log-ingest.js";

/** How often signs of life of agents go to the main thread. */
const TOUCH_EVERY_MS = 100;

const port = parentPort;
if (port === null) {
  throw new UsageError(
    "INVALID_STATE",
    "log-ingest-worker.js runs as a worker thread of the principal, not on its own",
  );
}
const data = workerData as IngestWorkerData;
const post = (m: FromIngest): void => port.postMessage(m);

/** A logger whose records go to the main thread's logger. */
function forwardingLogger(base: Record<string, unknown>): Logger {
  const emit =
    (level: "debug" | "info" | "warn" | "error") =>
    (message: string, meta?: object): void => {
      let clean: Record<string, unknown>;
      try {
        clean = JSON.parse(
          JSON.stringify({ ...base, ...meta }, (_k, v: unknown) => (v instanceof Error ? errorMessage(v) : v)),
        ) as Record<string, unknown>;
      } catch {
        clean = { ...base, meta: "(not serialisable)" };
      }
      post({ type: "log", level, message, meta: clean });
    };
  return {
    debug: emit("debug"),
    info: emit("info"),
    warn: emit("warn"),
    error: emit("error"),
    child: (meta) => forwardingLogger({ ...base, ...meta }),
  };
}
const logger = forwardingLogger({});

// The main thread's state, as last pushed.
let ping: PingState = data.ping;
let refusal: CdktrError | null = null;
const agents = new Map<string, { keyName: string | null; registered: boolean }>();
const keys = new Map<string, KeyIdentity>();
let proven: ProvenTopicSet | null = null;
const applyState = (s: IngestState): void => {
  if (s.ping !== undefined) ping = s.ping;
  if (s.refusal !== undefined) refusal = s.refusal === null ? null : CdktrError.fromWire(s.refusal);
  if (s.agents !== undefined) {
    agents.clear();
    for (const [id, keyName, registered] of s.agents) agents.set(id, { keyName, registered });
  }
};
applyState(data.state);
const setKeys = (all: readonly KeyIdentity[]): void => {
  keys.clear();
  for (const k of all) keys.set(k.publicKey, k);
};
if (data.auth !== null) setKeys(data.auth.keys);
/** Apply every update the main thread sent so far (it sends them before it answers what caused them). */
const takeUpdates = (): void => {
  for (let m = receiveMessageOnPort(data.updates); m !== undefined; m = receiveMessageOnPort(data.updates)) {
    const u = m.message as IngestUpdate;
    if (u.keys !== undefined) setKeys(u.keys);
    if (u.proven !== undefined) proven = u.proven === null ? null : new ProvenTopicSet(u.proven);
  }
};
const identify = (publicKey: string): KeyIdentity | undefined => {
  takeUpdates();
  return keys.get(publicKey);
};

// The log database's writer, with the store's settings (the main thread created and migrated
// it: nothing to do there), and a read-only connection to the main file for the leases of the
// runs whose lines arrive.
const db = openLogDatabase(data.logsPath);
const tables = new Tables(db);
const leaseDb = new Database(data.dbPath, { readonly: true, fileMustExist: true });
leaseDb.pragma("busy_timeout = 5000");
const leases = new Tables(leaseDb);
let problems: string[] = [];
const commit = new GroupCommit({
  db,
  clock: systemClock,
  logger,
  storageFull: (cause) => storageFull(data.logsPath, cause),
  turn: logsWriteTurn(data.turns),
});
/** Tell the main thread when the thread's own problems change (it merges them into `ping`). */
const reportProblems = (): void => {
  const now = commit.storageFull ? ["disk full"] : [];
  if (now.join("\n") === problems.join("\n")) return;
  problems = now;
  post({ type: "problems", problems });
};

const health = (): { health: "ok" | "degraded"; problems: string[] } => {
  const all = [...new Set([...(ping.problems ?? []), ...problems])];
  return { health: all.length === 0 ? "ok" : "degraded", problems: all };
};

const server = new RpcServer({
  serverId: data.serverId,
  version: data.version,
  endpoint: data.endpoint,
  verbs: LOG_VERBS,
  maxMessageBytes: data.maxMessageBytes,
  maxInFlightPerPeer: data.maxInFlightPerPeer,
  maxInFlightPerKey: data.maxInFlightPerKey,
  logger: logger.child({ component: "logs" }),
  health,
  ...(data.auth === null
    ? {}
    : {
        auth: { keyPair: data.auth.keyPair, identify, permits: permitsVerb },
        zapDomain: data.auth.zapDomain,
      }),
});
server.handle("ping", () => ({ ...ping, ...health(), time: new Date().toISOString() }));

const touched = new Set<string>();
const ingest = registerLogIngestHandlers(
  leaderGated(server, LEADER_ONLY_LOG_VERBS, () => {
    if (refusal !== null) throw refusal;
  }),
  {
    maxPendingLines: data.maxPendingLines,
    maxPendingBytes: data.maxPendingBytes,
    checkKey: (agentId, keyName) => {
      const a = agents.get(agentId);
      checkAgentKey(agentId, keyName, a === undefined ? undefined : { status: "ACTIVE", keyName: a.keyName });
    },
    touch: (agentId) => void touched.add(agentId),
    isActive: (agentId) => agents.get(agentId)?.registered === true,
    insertLogs: async (lines, claim) => {
      try {
        return await commit.commandInPieces(insertLogLinesInPieces(leases, tables, lines, claim), "bulk");
      } finally {
        reportProblems();
      }
    },
    publish: (inserted) => {
      takeUpdates();
      const wanted: LogLine[] = [];
      for (const l of inserted) {
        let topic: string;
        try {
          topic = topics.logs(l.workflowId, l.runId, l.taskId);
        } catch {
          continue; // the main thread logs ids that cannot be topics; nobody can subscribe to them
        }
        if (proven === null || proven.has(topic)) wanted.push(l);
      }
      post({ type: "publish", lines: wanted, stored: inserted.length });
    },
  },
);

let backlogSent = 0;
const touches = setInterval(() => {
  const backlog = ingest.pendingLines();
  if (backlog !== backlogSent) {
    backlogSent = backlog;
    post({ type: "backlog", lines: backlog });
  }
  if (touched.size === 0) return;
  post({ type: "touch", agentIds: [...touched] });
  touched.clear();
}, TOUCH_EVERY_MS);

let closing = false;
const close = async (): Promise<void> => {
  if (closing) return;
  closing = true;
  clearInterval(touches);
  try {
    await server.close();
    await commit.close();
    db.close();
    leaseDb.close();
    data.updates.close();
  } catch (e) {
    logger.error("log-ingest thread: error while closing", { error: errorMessage(e) });
  }
  if (touched.size > 0) post({ type: "touch", agentIds: [...touched] });
  post({ type: "closed" });
  port.close();
};

port.on("message", (m: ToIngest) => {
  if (m.type === "state") applyState(m.state);
  else if (m.type === "close") void close();
});

server.bind().then(
  (endpoint) => post({ type: "bound", endpoint }),
  (e: unknown) => {
    post({ type: "bindFailed", message: errorMessage(e) });
    void close();
  },
);
