import type { LogLine } from "@cdktr/protocol";
import { formatInstant } from "./duration.js";
import type { Style } from "./style.js";
import { terminalSafe } from "./terminal-text.js";

/**
 * One log line for people: `time  [run]  task  text`; stderr lines red and system lines dim on a
 * colour terminal. `showRun` adds the workflow and run id (for listings across runs). Control
 * characters of the line (a task's output) are shown escaped (`\x1b`), never sent to the terminal.
 */
export function formatLogLine(raw: LogLine, style: Style, options: { showRun?: boolean } = {}): string {
  const line = terminalSafe(raw);
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
