/**
 * A whole local cdktr for a test: one principal, `agents` agents and (optionally) a scheduler,
 * all real processes on the principal's ports.
 */
import type { ServiceHandle } from "@cdktr/test-base";
import { startPrincipal, type PrincipalFixture } from "./principal-fixture.js";
import type { PrincipalOptions } from "./principal-options.js";
import { startAgent, startScheduler, type AgentOptions, type AppOptions } from "./start-app.js";

/** Options of {@link startStack}. */
export interface StackOptions extends PrincipalOptions {
  /** How many agents. @default 1 */
  agents?: number;
  /** Options of every agent (each gets its own data directory unless `dataDir` is set). */
  agent?: AgentOptions;
  /** Start a scheduler too (with these options when an object). @default false */
  scheduler?: boolean | AppOptions;
}

/** What {@link startStack} started. */
export interface Stack {
  principal: PrincipalFixture;
  agents: ServiceHandle[];
  scheduler: ServiceHandle | null;
}

/** Start a principal, then its agents and scheduler; resolves once every one of them is ready. */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const { agents: n = 1, agent = {}, scheduler = false, ...principalOptions } = options;
  const principal = await startPrincipal(principalOptions);
  const agents = await Promise.all(
    Array.from({ length: n }, (_, i) => startAgent(principal, { name: `agent-${i + 1}`, ...agent })),
  );
  const sched = scheduler === false ? null : await startScheduler(principal, scheduler === true ? {} : scheduler);
  return { principal, agents, scheduler: sched };
}
