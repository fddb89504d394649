import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { LeaderWatch, Publisher, topics } from "@cdktr/protocol";
import { runRecord, waitFor } from "@cdktr/test-utils";
import { LiveFeed, type FeedEvent } from "./live-feed.js";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function publisher(): Promise<{ pub: Publisher; endpoint: string }> {
  const pub = new Publisher({ endpoint: "tcp://127.0.0.1:0" });
  const endpoint = await pub.bind();
  cleanups.push(() => pub.close());
  return { pub, endpoint };
}

test("a live feed moves to the new leader's publish endpoint and keeps its subscriptions", async () => {
  const old = await publisher();
  const next = await publisher();
  const watch = new LeaderWatch({ configured: null });
  watch.set({ api: "tcp://127.0.0.1:1", logs: "tcp://127.0.0.1:2", publish: old.endpoint });
  const got: FeedEvent[] = [];
  const feed = new LiveFeed({
    endpoint: old.endpoint,
    topics: [topics.runs("wf")],
    onEvent: (e) => got.push(e),
    key: null,
    leaderWatch: watch,
  });
  cleanups.push(() => feed.close());
  const seen = (runId: string) => got.some((e) => e.kind === "run" && e.run.runId === runId);
  // PUB/SUB drops messages until the subscription reached the publisher: publish until seen.
  await waitFor(() => {
    old.pub.publish(topics.runs("wf", "from-old"), { run: runRecord({ runId: "from-old" }) });
    return seen("from-old");
  });
  watch.set({ api: "tcp://127.0.0.1:3", logs: "tcp://127.0.0.1:4", publish: next.endpoint });
  await waitFor(() => {
    next.pub.publish(topics.runs("wf", "from-new"), { run: runRecord({ runId: "from-new" }) });
    return seen("from-new");
  });
  // Disconnected from the old leader: what it still publishes is no longer received.
  const before = got.length;
  for (let i = 0; i < 20; i++) old.pub.publish(topics.runs("wf", "late"), { run: runRecord({ runId: "late" }) });
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(got.slice(before).filter((e) => e.kind === "run" && e.run.runId === "late").length, 0);
});
