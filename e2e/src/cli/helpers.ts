/**
 * Helpers of the CLI suites: the repository's example workflows, and checks made through the
 * real `cdktr` bin (`runCli` from `@cdktr/test-utils`).
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { GetRunReplySchema, LogLineSchema } from "@cdktr/protocol";
import { runCli } from "@cdktr/test-utils";

/** Repository root (e2e/dist/cli -> ../../..). */
export const REPO = fileURLToPath(new URL("../../../", import.meta.url));
/** The example workflows (not a workspace: copied into a principal's workflow directory). */
export const EXAMPLES = fileURLToPath(new URL("../../../examples/workflows", import.meta.url));

/** Non-empty lines of a text. */
export function lines(text: string): string[] {
  return text.split("\n").filter((l) => l.trim() !== "");
}

/** Pids announced by `cdktr start all` (`[cdktr] <app> started (pid N)`). */
export function announcedPids(output: readonly string[]): number[] {
  const out: number[] = [];
  for (const l of output) {
    const m = /started \(pid (\d+)\)/.exec(l);
    if (m?.[1] !== undefined) out.push(Number(m[1]));
  }
  return out;
}

/**
 * Check a finished run through the CLI: every task COMPLETED, and `cdktr logs --run` shows each
 * task's stdout. Returns the task ids.
 */
export async function assertRunOutput(runId: string, env: Record<string, string>, cwd?: string): Promise<string[]> {
  const opts = cwd === undefined ? { env } : { env, cwd };
  const show = await runCli(["runs", "show", runId, "--json"], opts);
  assert.equal(show.code, 0, show.stderr);
  const { run, tasks } = GetRunReplySchema.parse(JSON.parse(show.stdout));
  assert.equal(run.status, "COMPLETED");
  assert.ok(tasks.length >= 2, "the example has at least two tasks");
  for (const t of tasks) assert.equal(t.status, "COMPLETED", `task ${t.taskId}`);
  const json = await runCli(["logs", "--run", runId, "--json"], opts);
  assert.equal(json.code, 0, json.stderr);
  const stored = (JSON.parse(json.stdout) as unknown[]).map((l) => LogLineSchema.parse(l));
  const text = await runCli(["logs", "--run", runId], opts);
  assert.equal(text.code, 0, text.stderr);
  for (const t of tasks) {
    const out = stored.filter((l) => l.taskId === t.taskId && l.stream === "stdout");
    assert.ok(out.length > 0, `task ${t.taskId} has stdout lines`);
    for (const l of out) {
      assert.ok(
        text.stdout.split("\n").some((row) => row.includes(` ${t.taskId}  ${l.line}`)),
        `logs --run shows ${t.taskId}: ${l.line}\n${text.stdout}`,
      );
    }
  }
  return tasks.map((t) => t.taskId);
}
