import { test } from "node:test";
import assert from "node:assert/strict";
import { noopLogger, type LogLine, type Publisher, type RunRecord } from "@cdktr/protocol";
import { createPrincipalEvents, LOG_PUBLISH_MAX_BACKLOG } from "./principal-events.js";

const line: LogLine = {
  time: "2026-11-28T13:00:00.000Z",
  runId: "r1",
  workflowId: "wf",
  taskId: "t",
  stream: "stdout",
  level: "info",
  seq: 1,
  line: "x",
};

test("live log lines are skipped while the publisher holds LOG_PUBLISH_MAX_BACKLOG messages; run events never are", () => {
  const sent: string[] = [];
  const publisher = { backlog: 0, publish: (topic: string) => sent.push(topic), wants: () => true };
  const events = createPrincipalEvents(() => publisher as unknown as Publisher, noopLogger);
  events.log(line);
  assert.deepEqual(sent, ["logs|wf|r1|t|"]);
  publisher.backlog = LOG_PUBLISH_MAX_BACKLOG;
  events.log(line);
  events.run({ runId: "r1", workflowId: "wf" } as RunRecord);
  assert.deepEqual(sent, ["logs|wf|r1|t|", "runs|wf|r1|"]);
  publisher.backlog = LOG_PUBLISH_MAX_BACKLOG - 1;
  events.log(line);
  assert.equal(sent.length, 3);
});

test("a log line nobody subscribed to is not published (Publisher.wants), run events always are", () => {
  const sent: string[] = [];
  const asked: string[] = [];
  const publisher = {
    backlog: 0,
    publish: (topic: string) => sent.push(topic),
    wants: (topic: string) => {
      asked.push(topic);
      return topic.startsWith("logs|other|");
    },
  };
  const events = createPrincipalEvents(() => publisher as unknown as Publisher, noopLogger);
  events.log(line);
  events.run({ runId: "r1", workflowId: "wf" } as RunRecord);
  events.log({ ...line, workflowId: "other" });
  assert.deepEqual(asked, ["logs|wf|r1|t|", "logs|other|r1|t|"]);
  assert.deepEqual(sent, ["runs|wf|r1|", "logs|other|r1|t|"]);
});
