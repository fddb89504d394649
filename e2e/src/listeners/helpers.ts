/**
 * Shared pieces of the listener suites: a workflow declaring the params the listeners send, the
 * machine's RabbitMQ/PostgreSQL (a missing server fails the test when `CI` is set, else skips
 * it), and a run count that must also stay put. The principal comes from `@cdktr/test-utils`.
 */
import { waitFor, workflowYaml, type PrincipalFixture } from "@cdktr/test-utils";
import type { RunRecord } from "@cdktr/protocol";

/** Request timeout of the suites' principal clients. */
export const CLIENT_TIMEOUT_MS = 3000;

/** A workflow declaring the optional string params used by the tests. */
export function paramWorkflow(name: string, params: string[] = ["date", "paths", "n"]): string {
  return workflowYaml({
    name,
    header: ["params:", ...params.map((n) => `  ${n}: {type: string, required: false}`)],
  });
}

/** `<id>.yml` -> {@link paramWorkflow}(id) for each id. */
export function paramWorkflows(...ids: string[]): Record<string, string> {
  return Object.fromEntries(ids.map((id) => [`${id}.yml`, paramWorkflow(id)]));
}

export { reachable, requireServer } from "@cdktr/test-utils";

/** Wait until `workflowId` has exactly `n` runs, then (after a settle delay) check it still has `n`. */
export async function expectRunCount(
  f: PrincipalFixture,
  workflowId: string,
  n: number,
  settleMs = 300,
): Promise<RunRecord[]> {
  await waitFor(async () => (await f.runs(workflowId)).length >= n, {
    timeoutMs: 10_000,
    what: `${n} run(s) of ${workflowId}`,
  });
  await new Promise((r) => setTimeout(r, settleMs));
  const runs = await f.runs(workflowId);
  if (runs.length !== n)
    throw new Error(
      `expected ${n} run(s) of ${workflowId}, got ${runs.length}: ${JSON.stringify(runs.map((r) => r.params))}`,
    );
  return runs;
}
