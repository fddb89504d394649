import type { AgentRecord } from "@cdktr/protocol";
import { isoTime as iso, type Clock } from "@cdktr/protocol";
import { permissionDenied } from "../errors.js";

/** What the principal knows about one agent. */
/**
 * Refuse `keyName` using the agent id of `current` (its state, if known) when that is an ACTIVE
 * agent of another key.
 * @throws CdktrError PERMISSION_DENIED
 */
export function checkAgentKey(
  agentId: string,
  keyName: string | null,
  current: Pick<AgentState, "status" | "keyName"> | undefined,
): void {
  if (keyName === null) return;
  if (current === undefined || current.status !== "ACTIVE" || current.keyName === null || current.keyName === keyName)
    return;
  throw permissionDenied(
    `agent id \`${agentId}\` is in use by an agent of key \`${current.keyName}\`: give this agent another CDKTR_AGENT_ID`,
    { agentId, key: keyName },
  );
}

export interface AgentState {
  agentId: string;
  host: string;
  capacity: number;
  labels: string[];
  version: string;
  runningRuns: string[];
  registeredAt: number;
  /** Principal-clock time of the last message from the agent. */
  lastSeen: number;
  /** False for agents only known from runs found at start (they must register again). */
  registered: boolean;
  status: "ACTIVE" | "LOST";
  /** Principal-clock time it was declared lost (null while ACTIVE). */
  lostAt: number | null;
  /**
   * The key this agent id speaks with (authentication on): while the agent is ACTIVE no other
   * key may use its id. Null without authentication.
   */
  keyName: string | null;
  /** The problems of the agent's last heartbeat (empty when all is well). */
  problems?: string[];
  /** Not declared lost before this principal-clock time, however long it was silent (see trackOrphan). */
  notLostBefore?: number;
  /** The session of the agent process that registered last (absent for agents that send none). */
  session?: string;
}

/**
 * The in-memory agent registry. Deadlines use the principal's clock only, and restart when the
 * principal starts: an agent that held runs before a restart gets one full timeout to show up.
 * With authentication, an agent id belongs to the key that registered it (or that holds its runs,
 * after a restart) until the agent is lost, so one agent key cannot heartbeat or register in the
 * name of another key's agent (and have its runs declared lost).
 *
 * Lost agents are listed (status LOST) for `gcAfterMs`, then forgotten ({@link collect}), so
 * agents that come and go never pile up. `listAgents` reads it in pages ({@link page}).
 */
export class AgentRegistry {
  private readonly agents = new Map<string, AgentState>();

  /**
   * @param timeoutMs an agent silent this long is lost
   * @param gcAfterMs a lost agent is forgotten this long after it was lost
   * @param maxPerKey agents one key may have in the registry at once (active or lost)
   */
  constructor(
    private readonly clock: Clock,
    private readonly timeoutMs: number,
    private readonly gcAfterMs: number = DEFAULT_AGENT_GC_AFTER_MS,
    private readonly maxPerKey: number = DEFAULT_MAX_AGENTS_PER_KEY,
  ) {}

  /**
   * Track an agent known only because stored runs name it (after a restart or a takeover), with
   * the key holding them. `graceMs`: time it gets on top of the heartbeat timeout to find this
   * principal (after a takeover its requests to the old leader must time out first).
   */
  trackOrphan(agentId: string, keyName: string | null = null, graceMs = 0): void {
    if (this.agents.has(agentId)) return;
    const now = this.clock.now();
    this.agents.set(agentId, {
      agentId,
      host: "",
      capacity: 1,
      labels: [],
      version: "",
      runningRuns: [],
      registeredAt: now,
      lastSeen: now,
      registered: false,
      status: "ACTIVE",
      lostAt: null,
      keyName,
      ...(graceMs > 0 ? { notLostBefore: now + this.timeoutMs + graceMs } : {}),
    });
  }

  /**
   * Check that the key `keyName` may speak for `agentId` (null: authentication off, always).
   * A key holds at most `maxPerKey` agent ids (active or lost): registering one more forgets the
   * key's longest-lost agent, and is refused while all of them are active.
   * @throws CdktrError PERMISSION_DENIED when the id is in use by an active agent of another key,
   *   or when the key already has `maxPerKey` active agents.
   */
  checkKey(agentId: string, keyName: string | null): void {
    checkAgentKey(agentId, keyName, this.agents.get(agentId));
  }

  /**
   * (Re-)register an agent speaking with the key `keyName` (null without authentication).
   * A key holds at most `maxPerKey` agent ids (active or lost): registering one more forgets the
   * key's longest-lost agent, and is refused while all of them are active.
   * @throws CdktrError PERMISSION_DENIED when the id is in use by an active agent of another key,
   *   or when the key already has `maxPerKey` active agents.
   */
  register(
    a: {
      agentId: string;
      host: string;
      capacity: number;
      labels: string[];
      version: string;
      runningRuns: string[];
      session?: string | undefined;
    },
    keyName: string | null = null,
  ): AgentState {
    this.checkKey(a.agentId, keyName);
    if (keyName !== null) this.makeRoomFor(a.agentId, keyName);
    const now = this.clock.now();
    const state: AgentState = {
      agentId: a.agentId,
      host: a.host,
      capacity: a.capacity,
      labels: a.labels,
      version: a.version,
      runningRuns: a.runningRuns,
      ...(a.session === undefined ? {} : { session: a.session }),
      registeredAt: now,
      lastSeen: now,
      registered: true,
      status: "ACTIVE",
      lostAt: null,
      keyName,
    };
    this.agents.set(a.agentId, state);
    return state;
  }

  /** Forget the key's longest-lost agent when a new id would exceed `maxPerKey`; refuse if none is lost. */
  private makeRoomFor(agentId: string, keyName: string): void {
    if (this.agents.get(agentId)?.keyName === keyName) return;
    let count = 0;
    let oldestLost: AgentState | undefined;
    for (const s of this.agents.values()) {
      if (s.keyName !== keyName) continue;
      count++;
      if (s.status === "LOST" && (oldestLost === undefined || (s.lostAt ?? 0) < (oldestLost.lostAt ?? 0)))
        oldestLost = s;
    }
    if (count < this.maxPerKey) return;
    if (oldestLost === undefined) {
      throw permissionDenied(
        `key \`${keyName}\` already has ${count} active agents (CDKTR_MAX_AGENTS_PER_KEY): give more agents keys of their own, or raise the limit`,
        { agentId, key: keyName },
      );
    }
    this.agents.delete(oldestLost.agentId);
  }

  /** A registered, not lost agent, or undefined. */
  active(agentId: string): AgentState | undefined {
    const a = this.agents.get(agentId);
    return a?.registered && a.status === "ACTIVE" ? a : undefined;
  }

  /**
   * The ACTIVE agent ids with their key and whether they registered, in a stable order: what
   * {@link checkKey} and {@link active} answer from (copied to the log-ingest thread).
   */
  activeIds(): [agentId: string, keyName: string | null, registered: boolean][] {
    const out: [string, string | null, boolean][] = [];
    for (const a of this.agents.values()) if (a.status === "ACTIVE") out.push([a.agentId, a.keyName, a.registered]);
    return out;
  }

  /** Record that the agent was heard from. Returns false when it must register (again). */
  touch(agentId: string, runningRuns?: string[], problems?: string[]): boolean {
    const a = this.agents.get(agentId);
    if (a === undefined || a.status === "LOST") return false;
    a.lastSeen = this.clock.now();
    if (runningRuns !== undefined) a.runningRuns = runningRuns;
    // A heartbeat (the only caller with runningRuns) without problems says all is well.
    if (runningRuns !== undefined) a.problems = problems ?? [];
    return a.registered;
  }

  /** Agents silent past the timeout, marked LOST now (each returned once). */
  expire(): AgentState[] {
    const now = this.clock.now();
    const lost: AgentState[] = [];
    for (const a of this.agents.values()) {
      if (a.status === "ACTIVE" && now - a.lastSeen > this.timeoutMs && now >= (a.notLostBefore ?? 0)) {
        a.status = "LOST";
        a.lostAt = now;
        lost.push(a);
      }
    }
    return lost;
  }

  /** Forget agents lost for longer than `gcAfterMs`; returns their ids. */
  collect(): string[] {
    const now = this.clock.now();
    const gone: string[] = [];
    for (const a of this.agents.values()) {
      if (a.status === "LOST" && a.lostAt !== null && now - a.lostAt > this.gcAfterMs) gone.push(a.agentId);
    }
    for (const id of gone) this.agents.delete(id);
    return gone;
  }

  /** Number of agents tracked (registered, orphans and lost ones not yet collected). */
  size(): number {
    return this.agents.size;
  }

  /**
   * One page of `listAgents`, in agent id order: the agents after `cursor` (an agent id), at most
   * `limit` of them and at most `maxBytes` of JSON (at least one agent per page, so a listing
   * always moves on). `nextCursor` is null on the last page. Orphans that never registered are
   * left out.
   */
  page(opts: { limit: number; cursor?: string | undefined; maxBytes: number }): {
    agents: AgentRecord[];
    nextCursor: string | null;
  } {
    const ids = [...this.agents.values()]
      .filter((a) => a.registered && (opts.cursor === undefined || a.agentId > opts.cursor))
      .map((a) => a.agentId)
      .sort();
    const agents: AgentRecord[] = [];
    let bytes = 0;
    for (const id of ids) {
      const a = this.agents.get(id);
      if (a === undefined) continue;
      const record = recordOf(a);
      const size = Buffer.byteLength(JSON.stringify(record)) + 1;
      if (agents.length > 0 && (agents.length >= opts.limit || bytes + size > opts.maxBytes)) {
        return { agents, nextCursor: agents[agents.length - 1]?.agentId ?? null };
      }
      agents.push(record);
      bytes += size;
    }
    return { agents, nextCursor: null };
  }

  /** Every agent as `listAgents` shows it, unpaged (orphans that never registered are left out). */
  list(): AgentRecord[] {
    return [...this.agents.values()].filter((a) => a.registered).map(recordOf);
  }
}

/** Default of `CDKTR_MAX_AGENTS_PER_KEY`. */
export const DEFAULT_MAX_AGENTS_PER_KEY = 256;

/** Default of `CDKTR_AGENT_GC_AFTER_MS`: lost agents are listed for an hour. */
export const DEFAULT_AGENT_GC_AFTER_MS = 3_600_000;

function recordOf(a: AgentState): AgentRecord {
  return {
    agentId: a.agentId,
    host: a.host,
    capacity: a.capacity,
    labels: a.labels,
    version: a.version,
    runningRuns: a.runningRuns,
    registeredAt: iso(a.registeredAt),
    lastHeartbeatAt: iso(a.lastSeen),
    status: a.status,
    problems: a.problems ?? [],
  };
}
