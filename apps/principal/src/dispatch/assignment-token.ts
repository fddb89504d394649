/**
 * Assignment tokens that name the agent process and the `fetchWork` call they answered, so that
 * the principal can tell from an agent's own word whether an assignment was started (see
 * {@link settlementOf} and docs/architecture.md, "Dispatch without a confirmation").
 */
import { randomUUID } from "node:crypto";

/** Where an assignment went: the agent process's session and its `fetchWork` number. */
export interface TokenOrigin {
  session: string;
  seq: number;
}

const PREFIX = "s1";

/**
 * A new random token; with `origin`, `s1.<session>.<seq>.<uuid>` (the session has no `.`), else a
 * bare UUID (an agent that confirms before starting). The token is stored with the run, so the
 * origin survives a principal restart or failover.
 */
export function newAssignmentToken(origin: TokenOrigin | null): string {
  const id = randomUUID();
  return origin === null ? id : `${PREFIX}.${origin.session}.${origin.seq}.${id}`;
}

/** The origin a token names, or null (a bare token, or not one of ours). */
export function tokenOrigin(token: string | null): TokenOrigin | null {
  if (token === null || !token.startsWith(`${PREFIX}.`)) return null;
  const parts = token.split(".");
  if (parts.length !== 4) return null;
  const seq = Number(parts[2]);
  if (!Number.isSafeInteger(seq) || seq < 1 || parts[1] === undefined || parts[1] === "") return null;
  return { session: parts[1], seq };
}

/** What an agent process said in a heartbeat or registration. */
export interface AgentSettlement {
  /** Runs it executes or has not finished reporting (those it started). */
  runningRuns: readonly string[];
  session?: string | undefined;
  settledThrough?: number | undefined;
  predecessor?: { session: string; started: readonly string[] } | undefined;
}

/** What to do with an ASSIGNED run in the light of its agent's word. */
export type Settlement = "wait" | "requeue" | "crash";

/**
 * Decide an ASSIGNED run's fate from what its agent (`report`) says; only an assignment fetched
 * with a session can be settled this way (`origin` not null).
 *
 * - Listed as running: it started; its confirmation is on its way (`wait`).
 * - Same session, number within `settledThrough`, not listed: never started, never will be (`requeue`).
 * - The predecessor's session, not among the runs it started: never started (`requeue`).
 * - Another session (the process that fetched it is gone, and nothing says what it did): it may
 *   have started, so it is treated as a run of a lost agent (`crash`).
 * - Otherwise (its fetch is not settled yet, or the agent sent no session): `wait`.
 */
export function settlementOf(runId: string, origin: TokenOrigin, report: AgentSettlement): Settlement {
  if (report.runningRuns.includes(runId)) return "wait";
  if (report.session === undefined) return "wait";
  if (origin.session === report.session) {
    return report.settledThrough !== undefined && origin.seq <= report.settledThrough ? "requeue" : "wait";
  }
  const p = report.predecessor;
  if (p !== undefined && p.session === origin.session && !p.started.includes(runId)) return "requeue";
  return "crash";
}
