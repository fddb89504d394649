/**
 * The soak's workflows and what each task must print. Every task first appends
 * `<runId> <taskId>` to the shared effects file (O_APPEND through the shell's `>>`, one short
 * write, so lines never interleave): the side effect that proves how many times it executed. It
 * then prints numbered lines (`<taskId> line <i>`), which the checks compare with `queryLogs`.
 */
import { workflowYaml, type TaskSpec } from "@cdktr/test-utils";

/** What one task prints on stdout when it completes. */
export function expectedLines(taskId: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${taskId} line ${i + 1}`);
}

/** Lines printed by each task that can complete, by workflow then task. */
export const LINE_COUNTS: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  tick: { t: 5 },
  fan: { start: 20, a: 60, b: 60, c: 60, join: 10 },
  flaky: { prep: 10, boom: 5, after: 1 },
  slow: { fine: 10, hang: 3 },
};

/**
 * A shell task: record the execution, print `lines` numbered lines (pausing 20 ms every 10
 * lines so output flows for a while), then `tail` (a command, e.g. `exit 3` or `sleep 30`).
 */
function task(effects: string, taskId: string, lines: number, extra: Partial<TaskSpec> = {}, tail = ""): TaskSpec {
  const script = [
    `echo "$CDKTR_RUN_ID $CDKTR_TASK_ID" >> '${effects}'`,
    "i=1",
    `while [ $i -le ${lines} ]; do echo "${taskId} line $i"; if [ $((i % 10)) -eq 0 ]; then sleep 0.02; fi; i=$((i+1)); done`,
    ...(tail === "" ? [] : [tail]),
  ].join("; ");
  return { cmd: "sh", args: ["-c", script], ...extra };
}

/** Workflow files (file name -> YAML) writing their side effects to `effects`. */
export function soakWorkflows(effects: string): Record<string, string> {
  const keyParam = ["params:", "  key: {type: string, required: false}"];
  const n = (wf: string, t: string): number => LINE_COUNTS[wf]?.[t] ?? 0;
  return {
    // Every second, catch_up all (far above any outage of the soak): every occurrence from the
    // first one recorded is due exactly once, so the occurrence check is exact.
    "tick.yml": workflowYaml({
      name: "Tick",
      cron: "* * * * * *",
      header: ["catch_up: { policy: all, max: 1000 }"],
      tasks: { t: task(effects, "t", n("tick", "t")) },
    }),
    // Fan-out and fan-in, requeued when its agent is lost.
    "fan.yml": workflowYaml({
      name: "Fan",
      header: [...keyParam, "on_agent_lost: requeue"],
      tasks: {
        start: task(effects, "start", n("fan", "start")),
        a: task(effects, "a", n("fan", "a"), { depends: ["start"] }),
        b: task(effects, "b", n("fan", "b"), { depends: ["start"] }),
        c: task(effects, "c", n("fan", "c"), { depends: ["start"] }),
        join: task(effects, "join", n("fan", "join"), { depends: ["a", "b", "c"] }),
      },
    }),
    // A task that fails after some output; its dependent is SKIPPED.
    "flaky.yml": workflowYaml({
      name: "Flaky",
      header: keyParam,
      tasks: {
        prep: task(effects, "prep", n("flaky", "prep")),
        boom: task(effects, "boom", n("flaky", "boom"), { depends: ["prep"] }, "exit 3"),
        after: task(effects, "after", n("flaky", "after"), { depends: ["boom"] }),
      },
    }),
    // A task killed by its 1 s timeout next to one that completes.
    "slow.yml": workflowYaml({
      name: "Slow",
      header: keyParam,
      tasks: {
        fine: task(effects, "fine", n("slow", "fine")),
        hang: task(effects, "hang", n("slow", "hang"), { extra: ["timeout: 1s"] }, "sleep 30"),
      },
    }),
  };
}
