/**
 * What a scenario is: an id, a title, the apps it needs, and a `run` returning rows.
 */
import type { AppName } from "./harness/cdktr.js";
import type { Row } from "./harness/result.js";

/** Shared state of one bench run. */
export interface BenchContext {
  quick: boolean;
  /**
   * Figures scenarios hand to each other (e.g. the peers scenario compares against our
   * `trigger.perSecond`). Keys are documented where they are set.
   */
  shared: Map<string, number>;
  /** Progress messages (stderr). */
  log(message: string): void;
  /** Write a `--cpu-prof` profile of the principal in these scenarios (ids), into this dir. */
  profileDir: string | null;
  profile: Set<string>;
  /** `--log-lines N`: overrides the size of the log scenario (for investigations). */
  logLines: number | null;
}

/** One benchmark scenario. */
export interface Scenario {
  id: string;
  title: string;
  needs: AppName[];
  run(ctx: BenchContext): Promise<{ rows: Row[]; details: Record<string, unknown> }>;
}

/**
 * `node --cpu-prof` flags for `proc` (principal, agent, scheduler) when scenario `id` is being
 * profiled, else an empty object; spread into the start options.
 */
export function profileFlags(ctx: BenchContext, id: string, proc: string): { nodeFlags?: string[] } {
  if (ctx.profileDir === null || !ctx.profile.has(id)) return {};
  return { nodeFlags: ["--cpu-prof", `--cpu-prof-dir=${ctx.profileDir}`, `--cpu-prof-name=${proc}-${id}.cpuprofile`] };
}
