import type { LogLine } from "@cdktr/protocol";
import { formatInstant } from "./duration.js";
import type { Style } from "./style.js";

/**
 * One log line for people: `time  [run]  task  text`; stderr lines red and system lines dim on a
 * colour terminal. `showRun` adds the workflow and run id (for listings across runs).
 */
export function formatLogLine(line: LogLine, style: Style, options: { showRun?: boolean } = {}): string {
  const time = style.dim(formatInstant(line.time));
  const where =
    options.showRun === true
      ? `${line.workflowId} ${style.dim(line.runId)} ${style.cyan(line.taskId)}`
      : style.cyan(line.taskId);
  const text =
    line.stream === "stderr"
      ? style.red(line.line)
      : line.stream === "system"
        ? style.dim(`[${line.level}] ${line.line}`)
        : line.line;
  return `${time}  ${where}  ${text}`;
}
