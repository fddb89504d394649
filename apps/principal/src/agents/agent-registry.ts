import type { AgentRecord } from "@cdktr/protocol";
import { isoTime as iso, type Clock } from "@cdktr/protocol";
import { permissionDenied } from "../errors.js";

/** What the principal knows about one agent. */
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
  /**
   * The key this agent id speaks with (authentication on): while the agent is ACTIVE no other
   * key may use its id. Null without authentication.
   */
  keyName: string | null;
  /** The problems of the agent's last heartbeat (empty when all is well). */
  problems?: string[];
}

/**
 * The in-memory agent registry. Deadlines use the principal's clock only, and restart when the
 * principal starts: an agent that held runs before a restart gets one full timeout to show up.
 * With authentication, an agent id belongs to the key that registered it (or that holds its runs,
 * after a restart) until the agent is lost, so one agent key cannot heartbeat or register in the
 * name of another key's agent (and have its runs declared lost).
 */
export class AgentRegistry {
  private readonly agents = new Map<string, AgentState>();

  constructor(
    private readonly clock: Clock,
    private readonly timeoutMs: number,
  ) {}

  /** Track an agent known only because stored runs name it (after a restart), with the key holding them. */
  trackOrphan(agentId: string, keyName: string | null = null): void {
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
      keyName,
    });
  }

  /**
   * Check that the key `keyName` may speak for `agentId` (null: authentication off, always).
   * @throws CdktrError PERMISSION_DENIED when the id is in use by an active agent of another key.
   */
  checkKey(agentId: string, keyName: string | null): void {
    if (keyName === null) return;
    const a = this.agents.get(agentId);
    if (a === undefined || a.status !== "ACTIVE" || a.keyName === null || a.keyName === keyName) return;
    throw permissionDenied(
      `agent id \`${agentId}\` is in use by an agent of key \`${a.keyName}\`: give this agent another CDKTR_AGENT_ID`,
      { agentId, key: keyName },
    );
  }

  /**
   * (Re-)register an agent speaking with the key `keyName` (null without authentication).
   * @throws CdktrError PERMISSION_DENIED when the id is in use by an active agent of another key.
   */
  register(
    a: {
      agentId: string;
      host: string;
      capacity: number;
      labels: string[];
      version: string;
      runningRuns: string[];
    },
    keyName: string | null = null,
  ): AgentState {
    this.checkKey(a.agentId, keyName);
    const now = this.clock.now();
    const state: AgentState = { ...a, registeredAt: now, lastSeen: now, registered: true, status: "ACTIVE", keyName };
    this.agents.set(a.agentId, state);
    return state;
  }

  /** A registered, not lost agent, or undefined. */
  active(agentId: string): AgentState | undefined {
    const a = this.agents.get(agentId);
    return a?.registered && a.status === "ACTIVE" ? a : undefined;
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
      if (a.status === "ACTIVE" && now - a.lastSeen > this.timeoutMs) {
        a.status = "LOST";
        lost.push(a);
      }
    }
    return lost;
  }

  /** Agents as `listAgents` shows them (orphans that never registered are left out). */
  list(): AgentRecord[] {
    return [...this.agents.values()]
      .filter((a) => a.registered)
      .map((a) => ({
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
      }));
  }
}
