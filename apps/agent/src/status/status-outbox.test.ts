import { after, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { CdktrError, noopLogger } from "@cdktr/protocol";
import { waitFor, makeTempDir, removeTempDirs } from "@cdktr/test-utils";
import { StatusOutbox, type StatusUpdate } from "./status-outbox.js";

after(removeTempDirs);

function update(runId: string, n: number): StatusUpdate {
  return {
    verb: "taskStatus",
    body: { agentId: "a", runId, taskId: `t${n}`, attempt: 1, status: "RUNNING", time: new Date(n).toISOString() },
  };
}

test("updates are delivered once each, in order, across an outage", async () => {
  const got: string[] = [];
  let down = true;
  const box = new StatusOutbox({
    dataDir: makeTempDir("cdktr-outbox-"),
    logger: noopLogger,
    retryBaseMs: 5,
    retryMaxMs: 20,
    sink: async (u) => {
      if (down) throw new CdktrError("UNAVAILABLE", "down");
      got.push((u.body as { taskId: string }).taskId);
    },
  });
  box.start();
  for (let i = 1; i <= 20; i++) box.push(update("r", i));
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(got, []);
  down = false;
  assert.ok(await box.flush(5000));
  assert.deepEqual(
    got,
    Array.from({ length: 20 }, (_, i) => `t${i + 1}`),
  );
  await box.stop();
});

test("undelivered updates survive the process: the next outbox on the data dir sends them first", async () => {
  const dir = makeTempDir("cdktr-outbox-");
  const a = new StatusOutbox({
    dataDir: dir,
    logger: noopLogger,
    retryBaseMs: 5,
    sink: async () => {
      throw new CdktrError("TIMEOUT", "t");
    },
  });
  a.start();
  a.push(update("r", 1));
  a.push(update("r", 2));
  await a.stop();
  assert.ok(existsSync(join(dir, "outbox.json")));
  const got: string[] = [];
  const b = new StatusOutbox({
    dataDir: dir,
    logger: noopLogger,
    sink: async (u) => void got.push((u.body as { taskId: string }).taskId),
  });
  b.start();
  b.push(update("r", 3));
  assert.ok(await b.flush(5000));
  assert.deepEqual(got, ["t1", "t2", "t3"]);
  assert.equal(existsSync(join(dir, "outbox.json")), false);
  await b.stop();
});

test("a refused update is dropped; AGENT_NOT_REGISTERED triggers re-registration and a resend; log barrier respected", async () => {
  const got: string[] = [];
  let registered = false;
  let reregistered = 0;
  let logsAcked = false;
  const box = new StatusOutbox({
    dataDir: makeTempDir("cdktr-outbox-"),
    logger: noopLogger,
    retryBaseMs: 5,
    onNotRegistered: () => {
      reregistered++;
      registered = true;
    },
    whenLogsAcked: () => waitFor(() => logsAcked, { timeoutMs: 5000 }).then(() => undefined),
    sink: async (u) => {
      const id = (u.body as { taskId: string }).taskId;
      if (id === "t1") throw new CdktrError("INVALID_TRANSITION", "no");
      if (!registered) throw new CdktrError("AGENT_NOT_REGISTERED", "who?");
      got.push(id);
    },
  });
  box.start();
  box.push(update("r", 1));
  box.push(update("r", 2));
  box.push(update("r", 3), { afterLogMark: 10 });
  await waitFor(() => got.length === 1, { timeoutMs: 5000 });
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(got, ["t2"], "t3 waits for its log lines");
  logsAcked = true;
  assert.ok(await box.flush(5000));
  assert.deepEqual(got, ["t2", "t3"]);
  assert.equal(reregistered, 1);
  await box.stop();
});
