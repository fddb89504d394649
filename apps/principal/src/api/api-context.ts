import type { KeyIdentity, KeyRecord, Logger } from "@cdktr/protocol";
import type { KeyRing } from "../auth/key-ring.js";
import type { LeaseClaim } from "../runs/state-machine.js";
import type { AgentLoss } from "../agents/agent-loss.js";
import type { AgentRegistry } from "../agents/agent-registry.js";
import type { PrincipalConfig } from "../config.js";
import type { Dispatcher } from "../dispatch/dispatcher.js";
import type { LeaderRole } from "../leader/leader-role.js";
import type { PrincipalMetrics } from "../metrics/principal-metrics.js";
import type { UlidGenerator } from "../ids.js";
import type { PrincipalEvents } from "../publish/principal-events.js";
import type { Store } from "../store/store.js";
import type { WorkflowRegistry } from "../workflows/workflow-registry.js";

/**
 * What the API handlers work with: the principal's started components. Built once by
 * `createPrincipal` after start-up, before the sockets bind; the leader-only parts are those of
 * the current term (`leader/leader-terms.ts`).
 */
export interface ApiContext {
  config: PrincipalConfig;
  logger: Logger;
  ids: UlidGenerator;
  store: Store;
  workflows: WorkflowRegistry;
  /** The current leader term's dispatcher; reading it on a standby throws `NOT_LEADER`. */
  readonly dispatcher: Dispatcher;
  /** The current leader term's agents; reading it on a standby throws `NOT_LEADER`. */
  readonly agents: AgentRegistry;
  /** The current leader term's agent-loss policy; reading it on a standby throws `NOT_LEADER`. */
  readonly agentLoss: AgentLoss;
  /** Whether this principal leads, and the leader's endpoints (`ping`, `registerAgent`). */
  role: LeaderRole;
  /** Throws `NOT_LEADER` unless this principal leads and its term is ready. */
  requireLeader: () => void;
  /** Whether the current leader term is loaded (writes are accepted); no side effect. */
  termReady: () => boolean;
  events: PrincipalEvents;
  /** Enrolled keys (updated by enrolments and revocations); null when authentication is off. */
  keys: KeyRing | null;
  /** Called once a revocation is committed (the principal re-binds its publish socket). */
  onKeyRevoked: (key: KeyRecord) => Promise<void>;
  /** The metrics (`CDKTR_METRICS_PORT`), or null when they are not served. */
  metrics?: PrincipalMetrics | null;
}

/** The lease claim of an agent report: the caller's key and the token it sent (null: authentication off). */
export function leaseClaim(identity: KeyIdentity | null, token: string | undefined): LeaseClaim | null {
  return identity === null ? null : { keyName: identity.name, token };
}
