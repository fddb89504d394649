import type { LOG_VERBS, LogLine } from "@cdktr/protocol";
import { logIngestBusy } from "../errors.js";
import type { HandlerRegistry } from "../leader/leader-gate.js";
import type { InsertLogsResult, LogClaim } from "../store/store.js";

/** Approximate bytes the principal holds for a line: its text and ids, plus 64 for the rest. */
function lineBytes(l: LogLine): number {
  return l.line.length + l.runId.length + l.taskId.length + l.workflowId.length + 64;
}

/**
 * Log lines (and bytes) received per agent and not yet stored: the principal's bound on what one
 * agent can make it hold (agent ids nobody registered share one budget per key). A batch that
 * would go beyond either bound is refused, except when the agent has nothing pending (so any
 * batch the message size allows gets through on its own).
 */
export class LogIngestBudget {
  private readonly pending = new Map<string, { lines: number; bytes: number }>();
  /** Lines pending over all agents. */
  private total = 0;

  constructor(
    private readonly maxLines: number,
    private readonly maxBytes: number,
  ) {}

  /**
   * Reserve room for `lines` of `agentId`; returns the release function (call it once the
   * batch is stored or failed).
   * @throws CdktrError RESOURCE_EXHAUSTED (retryable) when the agent's bound is reached.
   */
  take(agentId: string, lines: readonly LogLine[]): () => void {
    let bytes = 0;
    for (const l of lines) bytes += lineBytes(l);
    const now = this.pending.get(agentId);
    if (now !== undefined && (now.lines + lines.length > this.maxLines || now.bytes + bytes > this.maxBytes)) {
      throw logIngestBusy(
        agentId,
        now,
        `CDKTR_LOG_INGEST_MAX_PENDING_LINES=${this.maxLines}, CDKTR_LOG_INGEST_MAX_PENDING_BYTES=${this.maxBytes}`,
      );
    }
    const entry = now ?? { lines: 0, bytes: 0 };
    entry.lines += lines.length;
    entry.bytes += bytes;
    this.total += lines.length;
    this.pending.set(agentId, entry);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total -= lines.length;
      entry.lines -= lines.length;
      entry.bytes -= bytes;
      if (entry.lines <= 0) this.pending.delete(agentId);
    };
  }

  /**
   * Refuse at once a batch of `lineCount` lines that {@link take} would refuse for its lines alone
   * (checked on the request's JSON, before its lines are validated: a peer resending refused
   * batches costs little).
   * @throws CdktrError RESOURCE_EXHAUSTED (retryable) when the agent's line bound is reached.
   */
  precheck(agentId: string, lineCount: number): void {
    const now = this.pending.get(agentId);
    if (now !== undefined && now.lines + lineCount > this.maxLines) {
      throw logIngestBusy(
        agentId,
        now,
        `CDKTR_LOG_INGEST_MAX_PENDING_LINES=${this.maxLines}, CDKTR_LOG_INGEST_MAX_PENDING_BYTES=${this.maxBytes}`,
      );
    }
  }

  /** Lines pending for `agentId` (tests, diagnostics). */
  pendingLines(agentId: string): number {
    return this.pending.get(agentId)?.lines ?? 0;
  }

  /** Lines pending over all agents: received and not yet stored (the ingest backlog). */
  totalLines(): number {
    return this.total;
  }
}

/** What the `logBatch` handler works with (the principal's, or their mirrors in the log-ingest thread). */
export interface LogIngestDeps {
  /** `CDKTR_LOG_INGEST_MAX_PENDING_LINES` / `_BYTES`. */
  maxPendingLines: number;
  maxPendingBytes: number;
  /**
   * Refuse an agent id in use by an active agent of another key.
   * @throws CdktrError PERMISSION_DENIED
   */
  checkKey(agentId: string, keyName: string | null): void;
  /** Count a batch as a sign of life of its agent. */
  touch(agentId: string): void;
  /** Whether the agent id is registered and active (its own ingest budget). */
  isActive(agentId: string): boolean;
  /** Store the lines (the store's bulk lane). */
  insertLogs(lines: LogLine[], claim: LogClaim | null): Promise<InsertLogsResult>;
  /** Publish the lines stored now (not duplicates). */
  publish(inserted: LogLine[]): void;
}

/**
 * Register `logBatch` on the log-ingest server: store the lines idempotently (acknowledged after
 * the commit), publish the new ones, and count the batch as a sign of life of its agent. With
 * authentication, a batch is stored only when the caller's key holds the lease of every run in it
 * and sent each run's token (`tokens`). At most `CDKTR_LOG_INGEST_MAX_PENDING_LINES` /
 * `_BYTES` of one agent wait to be stored ({@link LogIngestBudget}); beyond that a batch gets the
 * retryable `RESOURCE_EXHAUSTED` and the agent sends it again later; a batch beyond the line bound
 * is refused from its JSON, before its lines are validated. Lines go in the store's bulk lane, so
 * they never delay triggers and status reports. Returns the backlog: lines received and not yet
 * stored, over all agents.
 */
export function registerLogIngestHandlers(
  server: HandlerRegistry<typeof LOG_VERBS>,
  deps: LogIngestDeps,
): { pendingLines: () => number } {
  const budget = new LogIngestBudget(deps.maxPendingLines, deps.maxPendingBytes);
  // Unregistered agent ids share one budget per key: inventing ids buys no extra room.
  const ownerOf = (agentId: string, keyName: string | null): string =>
    deps.isActive(agentId) ? agentId : `(unregistered agent ids of key ${keyName ?? "-"})`;
  server.precheck("logBatch", (json, rpc) => {
    const { agentId, lines } = (typeof json === "object" && json !== null ? json : {}) as Record<string, unknown>;
    if (typeof agentId !== "string" || !Array.isArray(lines)) return; // the schema answers that
    const keyName = rpc.identity?.name ?? null;
    try {
      deps.checkKey(agentId, keyName);
    } catch {
      return; // the handler answers that, after the schema
    }
    deps.touch(agentId);
    budget.precheck(ownerOf(agentId, keyName), lines.length);
  });
  server.handle("logBatch", async ({ agentId, lines, tokens }, rpc) => {
    const identity = rpc.identity;
    deps.checkKey(agentId, identity?.name ?? null);
    deps.touch(agentId);
    const release = budget.take(ownerOf(agentId, identity?.name ?? null), lines);
    let res: InsertLogsResult;
    try {
      res = await deps.insertLogs(lines, identity === null ? null : { keyName: identity.name, tokens: tokens ?? {} });
    } finally {
      release();
    }
    if (res.inserted.length > 0) deps.publish(res.inserted);
    return { stored: res.stored, duplicates: res.duplicates };
  });
  return { pendingLines: () => budget.totalLines() };
}
