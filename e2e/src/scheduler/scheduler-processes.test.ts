/**
 * Real processes: a principal and one or two scheduler processes over ZeroMQ, a workflow
 * directory on disk, runs read back from the principal's SQLite store.
 */
import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  cleanup,
  preparePrincipal,
  startScheduler,
  waitFor,
  workflowYaml,
  type AppOptions,
  type PrincipalFixture,
  type PrincipalOptions,
} from "@cdktr/test-utils";

afterEach(cleanup);

/** The announcement is what is tested, not the periodic rescans; debug shows every trigger decision. */
const SETTINGS = {
  CDKTR_WORKFLOW_DIR_REFRESH_FREQUENCY_S: "3600",
  CDKTR_SCHEDULER_REFRESH_S: "3600",
  CDKTR_LOG_LEVEL: "debug",
};

/** A one-task workflow YAML with the given cron. */
function cronYaml(cron: string, extra = ""): string {
  return workflowYaml({ name: "Cron test", cron, header: extra });
}

/** A principal (not started) with `workflows` and the suite's settings. */
function makeFixture(
  workflows: Record<string, string>,
  options: Omit<PrincipalOptions, "workflows" | "env"> = {},
): Promise<PrincipalFixture> {
  return preparePrincipal({ ...options, workflows, env: SETTINGS });
}

/** Start a scheduler process pointed at the fixture's principal, with the suite's settings. */
function spawnScheduler(f: PrincipalFixture, name = "scheduler", options: AppOptions = {}) {
  return startScheduler(f, { ...options, name, env: { ...SETTINGS, ...options.env } });
}

/** Every run of `workflowId` that carries a `scheduledFor`, oldest occurrence first. */
function scheduledRuns(f: PrincipalFixture, workflowId: string) {
  return f.runs(workflowId, { scheduledOnly: true });
}

/** Whole seconds from `from` to `to` inclusive, as ISO strings. */
function everySecond(from: number, to: number): string[] {
  const out: string[] = [];
  for (let t = Math.ceil(from / 1000) * 1000; t <= to; t += 1000) out.push(new Date(t).toISOString());
  return out;
}

/**
 * Observe `workflowId` for about `seconds` seconds once it fires, and return the expected
 * window (every whole second) and what the principal recorded in it.
 */
async function observeWindow(f: PrincipalFixture, workflowId: string, seconds: number) {
  await waitFor(async () => (await scheduledRuns(f, workflowId)).length > 0, {
    timeoutMs: 15_000,
    what: `a first scheduled run of ${workflowId}`,
  });
  const from = Math.ceil(Date.now() / 1000) * 1000 + 1000;
  const to = from + (seconds - 1) * 1000;
  const toIso = new Date(to).toISOString();
  // wait for DATA (a run for the last second of the window), not for wall-clock time
  await waitFor(async () => (await scheduledRuns(f, workflowId)).some((r) => (r.scheduledFor ?? "") >= toIso), {
    timeoutMs: seconds * 1000 + 10_000,
    what: `runs up to ${toIso}`,
  });
  const runs = await scheduledRuns(f, workflowId);
  const inWindow = runs
    .map((r) => r.scheduledFor ?? "")
    .filter((s) => s >= new Date(from).toISOString() && s <= toIso)
    .sort();
  return { expected: everySecond(from, to), inWindow, runs };
}

describe("scheduler process with a real principal", () => {
  it("fires `* * * * * *` every second of a 5 s window, each exactly once", async () => {
    const f = await makeFixture({ "tick.yml": cronYaml("* * * * * *") });
    await f.start();
    const scheduler = await spawnScheduler(f);
    assert.equal(typeof (scheduler.ready.endpoints as { principal?: unknown } | undefined)?.principal, "string");
    const { expected, inWindow, runs } = await observeWindow(f, "tick", 5);
    assert.deepEqual(inWindow, expected);
    assert.ok(runs.every((r) => r.source === "scheduler" && r.idempotencyKey === `cron:tick:${r.scheduledFor}`));
    // every trigger is logged with its instant, lateness and run id
    const triggered = scheduler.lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((j) => j.message === "triggered");
    assert.ok(triggered.length >= 5);
    assert.ok(
      triggered.every(
        (j) => typeof j.runId === "string" && typeof j.latenessMs === "number" && j.workflowId === "tick",
      ),
    );
    const stopped = await scheduler.stop();
    assert.equal(stopped.code, 0, "graceful stop exits 0");
  });

  it("two schedulers side by side still create each occurrence once", async () => {
    const f = await makeFixture({ "tick.yml": cronYaml("* * * * * *") });
    await f.start();
    const a = await spawnScheduler(f, "scheduler-a");
    const b = await spawnScheduler(f, "scheduler-b");
    const { expected, inWindow } = await observeWindow(f, "tick", 5);
    assert.deepEqual(inWindow, expected);
    // both really sent triggers: the principal answered one of them `duplicate`
    await waitFor(() => [...a.lines, ...b.lines].some((l) => l.includes('"occurrence already triggered"')), {
      timeoutMs: 5000,
      what: "a duplicate answer",
    });
    assert.equal((await a.stop()).code, 0);
    assert.equal((await b.stop()).code, 0);
  });

  it("a scheduler killed and restarted 2 s later fills the gap from the principal's record", async () => {
    const f = await makeFixture({ "tick.yml": cronYaml("* * * * * *") });
    await f.start();
    const first = await spawnScheduler(f, "scheduler-1");
    await waitFor(async () => (await scheduledRuns(f, "tick")).length >= 2, {
      timeoutMs: 15_000,
      what: "first runs",
    });
    await first.kill(); // SIGKILL: no goodbye
    const lastBefore = (await scheduledRuns(f, "tick")).at(-1)?.scheduledFor ?? "";
    await new Promise((r) => setTimeout(r, 2000)); // the downtime under test
    const restartedAt = Date.now();
    const second = await spawnScheduler(f, "scheduler-2");
    const target = Date.now() + 2000;
    await waitFor(
      async () => (await scheduledRuns(f, "tick")).some((r) => Date.parse(r.scheduledFor ?? "") >= target),
      { timeoutMs: 15_000, what: "runs after the restart" },
    );
    const all = (await scheduledRuns(f, "tick")).map((r) => r.scheduledFor ?? "");
    const first0 = Date.parse(all[0] ?? "");
    const last = Date.parse(all.at(-1) ?? "");
    // no hole (the occurrences of the downtime fired late) and no double
    assert.deepEqual(all, everySecond(first0, last));
    const lateByNewProcess = second.lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((j) => j.message === "triggered" && Date.parse(String(j.scheduledFor)) < restartedAt);
    assert.ok(lateByNewProcess.length >= 1, "the new process sent occurrences of the downtime");
    assert.ok(lateByNewProcess.every((j) => String(j.scheduledFor) > lastBefore));
  });

  it("obeys an edited cron after the principal's announcement (refreshes set to 3600 s)", async () => {
    const f = await makeFixture({ "edited.yml": cronYaml("0 0 0 1 1 *") });
    await f.start();
    const scheduler = await spawnScheduler(f);
    await scheduler.waitForLine((_l, j) => j?.message === "workflow scheduled" && j.workflowId === "edited", 10_000);
    assert.equal((await scheduledRuns(f, "edited")).length, 0);
    f.writeWorkflows({ "edited.yml": cronYaml("* * * * * *") });
    const { expected, inWindow } = await observeWindow(f, "edited", 3);
    assert.deepEqual(inWindow, expected);
    // and back to a schedule that does not fire: firing stops
    f.writeWorkflows({ "edited.yml": cronYaml("0 0 0 1 1 *") });
    await scheduler.waitForLine(
      (_l, j) => j?.message === "workflow rescheduled" && j.schedule === "0 0 0 1 1 *",
      10_000,
    );
    const count = (await scheduledRuns(f, "edited")).length;
    await new Promise((r) => setTimeout(r, 2000)); // a quiet period: nothing may fire in it
    assert.equal((await scheduledRuns(f, "edited")).length, count);
  });

  it("a bad cron in one file leaves the other schedules firing", async () => {
    const f = await makeFixture({
      "bad.yml": cronYaml("0 99 * * * *"),
      "bad-tz.yml": cronYaml("* * * * * *", "timezone: Mars/Olympus\n"),
      "good.yml": cronYaml("* * * * * *"),
    });
    await f.start();
    await spawnScheduler(f);
    const { expected, inWindow } = await observeWindow(f, "good", 3);
    assert.deepEqual(inWindow, expected);
    assert.equal((await scheduledRuns(f, "bad")).length, 0);
    assert.equal((await scheduledRuns(f, "bad-tz")).length, 0);
  });

  it("becomes ready before the principal is up and starts firing once it is", async () => {
    const f = await makeFixture({ "tick.yml": cronYaml("* * * * * *") }, { ports: "reserved" });
    const scheduler = await spawnScheduler(f);
    await scheduler.waitForLine((_l, j) => j?.message === "cannot load workflows from the principal; retrying", 15_000);
    await f.start();
    await waitFor(async () => (await scheduledRuns(f, "tick")).length >= 2, {
      timeoutMs: 20_000,
      what: "runs after a late principal",
    });
  });
});
