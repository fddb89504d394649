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
 * Publications waiting in the publisher beyond which live log lines are not published (they are
 * stored; readers fill such gaps with `queryLogs`). Run, task and workflow events are always
 * queued. Keeps a log flood from growing the principal by a queued message per line.
 */
export const LOG_PUBLISH_MAX_BACKLOG = 20_000;

/** Least time between two warnings about log lines not published live. */
const DROP_WARN_EVERY_MS = 10_000;

/**
 * The principal's events over the publisher `current()` returns (null before start and after
 * stop: events are then dropped). An id that cannot be part of a topic (it contains `|`) is
 * logged and skipped, never thrown at the caller. A log line is published only when some
 * subscriber proved a subscription that matches it ({@link Publisher.wants}), and not while the
 * publisher holds {@link LOG_PUBLISH_MAX_BACKLOG} messages (counted, warned about every 10 s).
 */
export function createPrincipalEvents(current: () => Publisher | null, logger: Logger): PrincipalEvents {
  let skippedLogs = 0;
  let lastDropWarning = 0;
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
    log: (l) => {
      const p = current();
      if (p === null) return;
      let topic: string;
      try {
        topic = topics.logs(l.workflowId, l.runId, l.taskId);
      } catch (e) {
        logger.warn("not published (id contains '|')", { error: errorMessage(e) });
        return;
      }
      // Nobody ever subscribed to it: skip the message (a third of a log flood's work otherwise).
      if (!p.wants(topic)) return;
      if (p.backlog >= LOG_PUBLISH_MAX_BACKLOG) {
        skippedLogs++;
        const now = Date.now();
        if (now - lastDropWarning >= DROP_WARN_EVERY_MS) {
          lastDropWarning = now;
          logger.warn("log lines not published live: the publish queue is full (they are stored: query them)", {
            skipped: skippedLogs,
            backlog: p.backlog,
          });
          skippedLogs = 0;
        }
        return;
      }
      p.publish(topic, l);
    },
    workflows: (event) => publish(() => topics.workflows(), event),
  };
}
