/**
 * Shared pieces of the listener suites: a workflow declaring the params the listeners send, the
 * machine's RabbitMQ/PostgreSQL (a missing server fails the test when `CI` is set, else skips
 * it), and a run count that must also stay put. The principal comes from `@cdktr/test-utils`.
 */
import { createConnection } from "node:net";
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

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export function reachable(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: "127.0.0.1", port });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

/**
 * `undefined` when the server on `port` is up; otherwise a skip message, or an exception when
 * the `CI` variable is set (CI must have the server).
 */
export async function requireServer(name: string, port: number): Promise<string | undefined> {
  if (await reachable(port)) return undefined;
  const msg = `${name} is not reachable on 127.0.0.1:${port}`;
  if (process.env.CI !== undefined && process.env.CI !== "")
    throw new Error(`${msg} (CI is set: the server is required)`);
  return `${msg}: skipped (start it, or set CI to make this a failure)`;
}

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
