/**
 * A real principal with the test acting as its agent (its PrincipalClient and LogClient), so the
 * order and timing of transitions and log lines are under the test's control.
 */
import assert from "node:assert/strict";
import { RunWatcher, type RunWatcherOptions } from "@cdktr/cli";
import type { LogLine } from "@cdktr/protocol";
import { startPrincipal } from "@cdktr/test-utils";

/** What a test chooses of a {@link RunWatcher} (the rest points it at the fake agent's `hello`). */
type WatchOptions = Omit<RunWatcherOptions, "client" | "publishEndpoint" | "workflowId" | "pollIntervalMs" | "key">;

const now = (): string => new Date().toISOString();

/** Start a principal (the `hello` workflow: tasks hello, then goodbye) and register this test as its agent. */
export async function setupFakeAgent() {
  const p = await startPrincipal({ clientTimeoutMs: 3000 });
  const client = p.client;
  const logs = p.logClient;
  const agentId = "test-agent";
  /** The assignment token of each run this fake agent took (sent with its reports and log lines). */
  const tokens = new Map<string, string>();
  await client.registerAgent({ agentId, host: "test", capacity: 1, labels: [], version: "0", runningRuns: [] });
  const line = (runId: string, taskId: string, seq: number): LogLine => ({
    time: now(),
    runId,
    workflowId: "hello",
    taskId,
    stream: "stdout",
    level: "info",
    seq,
    line: `${taskId} line ${seq}`,
  });
  /** Trigger `hello`; resolves with the run id. */
  const trigger = async (): Promise<string> =>
    (await client.runWorkflow({ workflowId: "hello", source: "test" })).runId;
  /** A RunWatcher of `hello` on this principal, polling every 200 ms. */
  const watcher = (options: WatchOptions): RunWatcher =>
    new RunWatcher({
      client,
      publishEndpoint: p.endpoints.publish,
      key: p.key(),
      workflowId: "hello",
      pollIntervalMs: 200,
      ...options,
    });
  /** Take the queued run and start it as an agent would. */
  const startRun = async (runId: string): Promise<void> => {
    const { assignment } = await client.fetchWork({ agentId, waitMs: 5000, freeSlots: 1 });
    assert.equal(assignment?.run.runId, runId);
    await client.confirmAssignment({ agentId, runId, token: assignment.token });
    tokens.set(runId, assignment.token);
    await client.runStatus({ agentId, runId, token: assignment.token, status: "RUNNING", time: now() });
  };
  const task = (runId: string, taskId: string, status: "RUNNING" | "COMPLETED", attempt = 1) =>
    client.taskStatus({
      agentId,
      runId,
      token: tokens.get(runId),
      taskId,
      attempt,
      status,
      time: now(),
      ...(status === "COMPLETED" ? { exitCode: 0 } : {}),
    });
  const send = (lines: LogLine[]) =>
    logs.logBatch({
      agentId,
      lines,
      tokens: Object.fromEntries(
        lines.flatMap((l) => (tokens.has(l.runId) ? [[l.runId, tokens.get(l.runId) ?? ""]] : [])),
      ),
    });
  const finish = (runId: string) =>
    client.runStatus({ agentId, runId, token: tokens.get(runId), status: "COMPLETED", time: now() });
  /** The assignment token of a run this fake agent took (for reports a test sends itself). */
  const tokenOf = (runId: string): string | undefined => tokens.get(runId);
  const close = () => p.closeClients();
  /** SIGKILL the principal and start it again on the same database and ports. */
  const restartPrincipal = async (downMs: number): Promise<void> => {
    await p.kill();
    await new Promise((r) => setTimeout(r, downMs));
    await p.start();
    await client.registerAgent({ agentId, host: "test", capacity: 1, labels: [], version: "0", runningRuns: [] });
  };
  return { p, client, trigger, watcher, line, startRun, task, send, finish, tokenOf, close, restartPrincipal };
}
