import {
  errorMessage,
  topics,
  type LogLine,
  type Logger,
  type Publisher,
  type RunRecord,
  type TaskRunRecord,
  type WorkflowsChangedEvent,
} from "@cdktr/protocol";

/** What the principal publishes on its PUB socket, one method per kind of event. */
export interface PrincipalEvents {
  /** `runs|<wf>|<run>|` with the run's new state. */
  run(run: RunRecord): void;
  /** `tasks|<wf>|<run>|` for each task that changed. */
  tasks(workflowId: string, tasks: readonly TaskRunRecord[]): void;
  /** `logs|<wf>|<run>|<task>|` for a newly stored log line. */
  log(line: LogLine): void;
  /** `workflows|` after the workflow directory changed. */
  workflows(event: WorkflowsChangedEvent): void;
}

/**
 * The principal's events over the publisher `current()` returns (null before start and after
 * stop: events are then dropped). An id that cannot be part of a topic (it contains `|`) is
 * logged and skipped, never thrown at the caller.
 */
export function createPrincipalEvents(current: () => Publisher | null, logger: Logger): PrincipalEvents {
  const publish = (topic: () => string, body: unknown): void => {
    try {
      current()?.publish(topic(), body);
    } catch (e) {
      logger.warn("not published (id contains '|')", { error: errorMessage(e) });
    }
  };
  return {
    run: (run) => publish(() => topics.runs(run.workflowId, run.runId), { run }),
    tasks: (workflowId, tasks) => {
      for (const task of tasks) publish(() => topics.tasks(workflowId, task.runId), { workflowId, task });
    },
    log: (l) => publish(() => topics.logs(l.workflowId, l.runId, l.taskId), l),
    workflows: (event) => publish(() => topics.workflows(), event),
  };
}
