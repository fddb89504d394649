import { MessageChannel, type MessagePort, Worker } from "node:worker_threads";
import { errorMessage, registerZapDomain, toCdktrError, type KeyPair, type Publisher } from "@cdktr/protocol";
import type { ApiContext } from "../api/api-context.js";
import type { KeyRing } from "../auth/key-ring.js";
import { principalPing, type ServerIdentity } from "../api/servers.js";
import { PrincipalStartError, shuttingDown } from "../errors.js";
import type { FromIngest, IngestState, IngestUpdate, IngestWorkerData, ToIngest } from "./ingest-messages.js";

/** How often the main thread compares its state with what the log thread last got. */
const STATE_EVERY_MS = 100;
/** Wait before starting the thread again after it died. */
const RESTART_AFTER_MS = 1000;
/** Longest a closing thread gets to finish its batches before it is terminated. */
const CLOSE_TIMEOUT_MS = 15_000;

/** Options of {@link LogIngestThread}. */
export interface LogIngestThreadOptions {
  ctx: ApiContext;
  id: ServerIdentity;
  /** The main SQLite file (`SqliteStore.path`), read for leases. */
  dbPath: string;
  /** The log database (`SqliteStore.logsPath`, already migrated), written by the thread. */
  logsPath: string;
  /** The log database's write-lock turns (`SqliteStore.writeTurns`). */
  turns: SharedArrayBuffer;
  /** The principal's CURVE pair and its enrolled keys; null with authentication off. */
  auth: { keyPair: KeyPair; keys: KeyRing } | null;
  /** The current publisher (null while it is re-bound or closed). */
  publisher: () => Publisher | null;
  /** The thread's own problems changed (merged into `ping`). */
  onProblems: (problems: string[]) => void;
}

/**
 * The log-ingest server of a principal on SQLite, run in its own worker thread
 * (`log-ingest-worker.ts`): same socket, verbs, bounds and answers as the in-thread one
 * (`createLogServer`), with none of a log flood's parsing, validation, inserts and garbage on the
 * main thread. This side keeps the thread's copy of the principal's state current (pushed when it
 * changes, checked every 100 ms), applies what it sends back (agents' signs of life, lines to
 * publish, log records, problems), and starts it again on the same endpoint if it dies.
 */
export class LogIngestThread {
  readonly #opts: LogIngestThreadOptions;
  #worker: Worker | null = null;
  #endpoint: string | null = null;
  #closed = false;
  #timer: NodeJS.Timeout | null = null;
  /** What the thread last got, to send only what changed. */
  #sent = { ping: "", refusal: "", agents: "", publisher: undefined as Publisher | null | undefined, proven: -2 };
  /** Log lines the thread received and has not stored yet, as it last said (every 100 ms at most). */
  #backlog = 0;

  /** Log lines received and not yet stored (the ingest backlog), as of at most 100 ms ago. */
  get backlog(): number {
    return this.#backlog;
  }
  #exited: Promise<void> = Promise.resolve();
  #zap: { domain: string; release(): void } | null = null;
  /** The port of {@link IngestUpdate}s to the thread, and how to close it. */
  #updates: MessagePort | null = null;
  #stopUpdates: (() => void) | null = null;

  constructor(opts: LogIngestThreadOptions) {
    this.#opts = opts;
  }

  /**
   * Start the thread and bind its socket on `endpoint`.
   * @returns the actual endpoint (with the chosen port when the requested one was 0)
   * @throws PrincipalStartError SOCKET_UNAVAILABLE with the reason the thread could not bind
   */
  async bind(endpoint: string): Promise<string> {
    const { ctx } = this.#opts;
    const auth = this.#opts.auth;
    if (auth !== null) {
      const keys = auth.keys;
      // ZeroMQ's one ZAP handler lives on this thread (its context is the process's); the
      // thread's socket names a domain registered here.
      this.#zap = await registerZapDomain(
        (k) => keys.identify(k) !== undefined,
        ctx.logger.child({ component: "zap" }),
      );
    }
    try {
      // Closed while the ZAP domain was being registered: start nothing that close() cannot see.
      if (this.#closed) throw shuttingDown("the log-ingest thread was closed while starting");
      this.#endpoint = await this.#start(endpoint);
    } catch (e) {
      this.#zap?.release();
      this.#zap = null;
      throw e;
    }
    if (!this.#closed) {
      this.#timer = setInterval(() => this.pushState(), STATE_EVERY_MS);
      this.#timer.unref();
    }
    return this.#endpoint;
  }

  /** Send the thread what changed of the principal's state now (e.g. right after a term began). */
  pushState(): void {
    const w = this.#worker;
    if (w === null || this.#closed) return;
    const state = this.#changes();
    if (Object.keys(state).length > 0) w.postMessage({ type: "state", state } satisfies ToIngest);
  }

  /**
   * A subscriber proved a new topic: the thread's copy of the proven topics grows now, before the
   * lines it stores next are filtered with it (a live watcher misses none).
   */
  provenChanged(): void {
    const publisher = this.#opts.publisher();
    const count = publisher?.provenCount ?? -2;
    if (this.#updates === null || (publisher === this.#sent.publisher && count === this.#sent.proven)) return;
    // No publisher (being re-bound): nothing is wanted until the new one has subscribers.
    const proven =
      publisher === null ? { all: false, prefixes: [], irregular: [], count: 0 } : publisher.provenTopics();
    this.#updates.postMessage({ proven } satisfies IngestUpdate);
    this.#sent.publisher = publisher;
    this.#sent.proven = count;
  }

  /** Stop the thread: requests from now on are refused, batches being stored finish. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    const w = this.#worker;
    if (w !== null) {
      w.postMessage({ type: "close" } satisfies ToIngest);
      const timeout = setTimeout(() => void w.terminate(), CLOSE_TIMEOUT_MS);
      await this.#exited;
      clearTimeout(timeout);
    }
    this.#worker = null;
    this.#stopUpdates?.();
    this.#zap?.release();
    this.#zap = null;
  }

  #start(endpoint: string): Promise<string> {
    const { ctx, id } = this.#opts;
    this.#sent = { ping: "", refusal: "", agents: "", publisher: undefined, proven: -2 };
    this.#stopUpdates?.();
    // Changes the thread must see before the next request it serves go on their own port, which
    // it reads synchronously (`receiveMessageOnPort`) right before it uses them.
    const { port1, port2 } = new MessageChannel();
    this.#updates = port1;
    const auth = this.#opts.auth;
    let workerAuth: IngestWorkerData["auth"] = null;
    let offKeys = (): void => undefined;
    if (auth !== null) {
      if (this.#zap === null) throw new PrincipalStartError("SOCKET_UNAVAILABLE", "log-ingest thread: no ZAP domain");
      const keys = auth.keys;
      offKeys = keys.onChange(() => port1.postMessage({ keys: keys.identities() } satisfies IngestUpdate));
      workerAuth = { keyPair: auth.keyPair, zapDomain: this.#zap.domain, keys: keys.identities() };
    }
    this.#stopUpdates = () => {
      offKeys();
      port1.close();
      this.#updates = null;
      this.#stopUpdates = null;
    };
    const data: IngestWorkerData = {
      dbPath: this.#opts.dbPath,
      logsPath: this.#opts.logsPath,
      turns: this.#opts.turns,
      endpoint,
      serverId: id.serverId,
      version: id.version,
      maxMessageBytes: ctx.config.maxMessageBytes,
      maxInFlightPerPeer: ctx.config.maxRequestsInFlight,
      maxInFlightPerKey: ctx.config.maxRequestsInFlightPerKey,
      maxPendingLines: ctx.config.logIngestMaxPendingLines,
      maxPendingBytes: ctx.config.logIngestMaxPendingBytes,
      auth: workerAuth,
      updates: port2,
      ping: this.#ping(),
      state: this.#changes(),
    };
    const worker = new Worker(new URL("./log-ingest-worker.js", import.meta.url), {
      workerData: data,
      transferList: [port2],
    });
    this.#worker = worker;
    const logger = ctx.logger.child({ component: "logs" });
    return new Promise<string>((resolve, reject) => {
      let bound = false;
      worker.on("message", (m: FromIngest) => {
        switch (m.type) {
          case "bound":
            bound = true;
            resolve(m.endpoint);
            return;
          case "bindFailed":
            reject(new PrincipalStartError("SOCKET_UNAVAILABLE", m.message));
            return;
          case "touch":
            for (const agentId of m.agentIds) this.#touch(agentId);
            return;
          case "backlog":
            this.#backlog = m.lines;
            return;
          case "publish":
            ctx.metrics?.logLines(m.stored);
            for (const l of m.lines) ctx.events.log(l);
            return;
          case "log":
            logger[m.level](m.message, m.meta);
            return;
          case "problems":
            this.#opts.onProblems(m.problems);
            return;
          case "closed":
            return;
        }
      });
      this.#exited = new Promise<void>((done) => {
        worker.once("exit", (code) => {
          if (this.#worker === worker) this.#worker = null;
          this.#opts.onProblems([]);
          done();
          if (!bound) {
            reject(
              new PrincipalStartError(
                "SOCKET_UNAVAILABLE",
                `the log-ingest thread ended (exit code ${code}) before binding: see the error logged before`,
              ),
            );
            return;
          }
          if (this.#closed) return;
          logger.error("the log-ingest thread ended; starting it again (agents resend their unacknowledged batches)", {
            exitCode: code,
          });
          setTimeout(() => {
            if (this.#closed) return;
            this.#start(this.#endpoint ?? endpoint).catch((e: unknown) =>
              logger.error("cannot start the log-ingest thread again", { error: errorMessage(e) }),
            );
          }, RESTART_AFTER_MS).unref();
        });
      });
      worker.on("error", (e) => logger.error("log-ingest thread failed", { error: errorMessage(e) }));
    });
  }

  #touch(agentId: string): void {
    try {
      this.#opts.ctx.agents.touch(agentId);
    } catch {
      // Not leading (any more): nobody tracks agents here.
    }
  }

  #ping(): ReturnType<typeof principalPing> {
    return principalPing(this.#opts.ctx, this.#opts.id);
  }

  /** The parts of the principal's state that differ from what the thread last got. */
  #changes(): IngestState {
    const { ctx } = this.#opts;
    const out: IngestState = {};
    const { time: _time, ...ping } = this.#ping();
    const pingText = JSON.stringify(ping);
    if (pingText !== this.#sent.ping) {
      out.ping = ping;
      this.#sent.ping = pingText;
    }
    let refusal: IngestState["refusal"] = null;
    let agents: NonNullable<IngestState["agents"]> = [];
    try {
      ctx.requireLeader();
      agents = ctx.agents.activeIds();
    } catch (e) {
      refusal = toCdktrError(e).toWire();
    }
    const refusalText = JSON.stringify(refusal);
    if (refusalText !== this.#sent.refusal) {
      out.refusal = refusal;
      this.#sent.refusal = refusalText;
    }
    const agentsText = agents.map(([a, k, r]) => `${a}\u0000${k ?? ""}\u0000${r ? 1 : 0}`).join("\u0001");
    if (agentsText !== this.#sent.agents) {
      out.agents = agents;
      this.#sent.agents = agentsText;
    }
    this.provenChanged();
    return out;
  }
}
