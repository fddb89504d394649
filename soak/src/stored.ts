/**
 * What the principal stored at the end of the soak: every run, with its tasks and log lines, read
 * through the API for the checks.
 */
import type { LogLine, PrincipalClient, RunRecord, TaskRunRecord } from "@cdktr/protocol";
import { runLogs } from "@cdktr/test-utils";

/** Every run, and the tasks and log lines of each (by runId). */
export interface Stored {
  runs: RunRecord[];
  tasks: Map<string, readonly TaskRunRecord[]>;
  logs: Map<string, readonly LogLine[]>;
}

/** Pages of listRuns (every run of every workflow). */
async function allRuns(client: PrincipalClient): Promise<RunRecord[]> {
  const out: RunRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await client.listRuns({ order: "asc", limit: 1000, ...(cursor === undefined ? {} : { cursor }) });
    out.push(...page.runs);
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
  return out;
}

/** Run `fn` over `items` with at most `n` at once. */
async function pool<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: n }, worker));
}

/** Read every run with its tasks and log lines (8 runs at a time). */
export async function readStored(client: PrincipalClient): Promise<Stored> {
  const runs = await allRuns(client);
  const tasks = new Map<string, readonly TaskRunRecord[]>();
  const logs = new Map<string, readonly LogLine[]>();
  await pool(runs, 8, async (r) => {
    tasks.set(r.runId, (await client.getRun(r.runId)).tasks);
    logs.set(r.runId, await runLogs(client, r.runId));
  });
  return { runs, tasks, logs };
}
