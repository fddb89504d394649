import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import Database from "better-sqlite3";
import { LogClient, isCdktrError, noopLogger, type LogLine, type Publisher } from "@cdktr/protocol";
import { makeTempDir, removeTempDirs, waitFor } from "@cdktr/test-utils";
import type { ApiContext } from "../api/api-context.js";
import { notLeader } from "../leader/leader-role.js";
import { SqliteStore } from "../store/sqlite/sqlite-store.js";
import { LogIngestThread } from "./log-ingest-thread.js";

after(removeTempDirs);

const line = (runId: string, seq: number): LogLine => ({
  time: new Date().toISOString(),
  runId,
  workflowId: "wf",
  taskId: "t",
  stream: "stdout",
  level: "info",
  seq,
  line: `line ${seq}`,
});

/** A thread over a real store file, with the main thread's state faked: what it touches and publishes is recorded. */
async function startThread(): Promise<{
  thread: LogIngestThread;
  client: LogClient;
  store: SqliteStore;
  touched: string[];
  published: LogLine[];
  state: { leader: boolean; wanted: string[] };
}> {
  const path = join(makeTempDir("cdktr-logthread-"), "t.db");
  const store = SqliteStore.open({ path });
  const touched: string[] = [];
  const published: LogLine[] = [];
  const state = { leader: true, wanted: [] as string[] };
  const ctx = {
    config: {
      maxMessageBytes: 1024 * 1024,
      maxRequestsInFlight: 100,
      maxRequestsInFlightPerKey: 1000,
      logIngestMaxPendingLines: 20_000,
      logIngestMaxPendingBytes: 16 * 1024 * 1024,
    },
    logger: noopLogger,
    store,
    role: { problems: () => [], ping: () => ({ role: "leader", leader: null }) },
    workflows: { setHash: "h" },
    requireLeader: () => {
      if (!state.leader) throw notLeader(null, "test");
    },
    termReady: () => state.leader,
    agents: { touch: (id: string) => touched.push(id), activeIds: () => [] },
    events: { log: (l: LogLine) => published.push(l) },
  } as unknown as ApiContext;
  // A publisher whose subscribers proved `state.wanted` (prefixes ending with `|`).
  const publisher = {
    get provenCount() {
      return state.wanted.length;
    },
    provenTopics: () => ({ all: false, prefixes: [...state.wanted], irregular: [], count: state.wanted.length }),
  } as unknown as Publisher;
  const thread = new LogIngestThread({
    ctx,
    id: { serverId: "test", version: "0" },
    dbPath: path,
    logsPath: store.logsPath,
    turns: store.writeTurns,
    auth: null,
    publisher: () => publisher,
    onProblems: (p) => store.setLogWriterProblems(p),
  });
  const endpoint = await thread.bind("tcp://127.0.0.1:0");
  // No leader to look for: a NOT_LEADER comes back at once instead of after the default 20 s search.
  const client = new LogClient({ endpoint, timeoutMs: 5000, env: {}, key: null, leaderWaitMs: 0 });
  return { thread, client, store, touched, published, state };
}

describe("log ingest in its own thread", { timeout: 60_000 }, () => {
  it("stores batches through its own connection, forwards signs of life, publishes only wanted lines, follows leadership", async () => {
    const { thread, client, store, touched, published, state } = await startThread();
    try {
      assert.deepEqual(await client.logBatch({ agentId: "a1", lines: [line("r1", 1), line("r1", 2)] }), {
        stored: 2,
        duplicates: 0,
      });
      assert.deepEqual(await client.logBatch({ agentId: "a1", lines: [line("r1", 2)] }), { stored: 0, duplicates: 1 });
      assert.equal((await store.counts()).logs, 2, "the main thread's connection reads the lines");
      await waitFor(() => touched.includes("a1"), { what: "the agent's sign of life" });
      assert.equal(published.length, 0, "nobody subscribed: nothing published");

      state.wanted = ["logs|wf|r2|"];
      thread.provenChanged();
      await client.logBatch({ agentId: "a1", lines: [line("r1", 3), line("r2", 1)] });
      await waitFor(() => published.length > 0, { what: "the wanted line" });
      assert.deepEqual(
        published.map((l) => [l.runId, l.seq]),
        [["r2", 1]],
      );

      state.leader = false;
      thread.pushState();
      // Until the new state reaches the thread its batches are still stored: each attempt sends a
      // line of its own, and the one refused must not be stored.
      let seq = 100;
      await waitFor(
        async () => {
          seq++;
          try {
            await client.logBatch({ agentId: "a1", lines: [line("r1", seq)] }, { retry: false });
            return false;
          } catch (e) {
            return isCdktrError(e, "NOT_LEADER");
          }
        },
        { what: "NOT_LEADER on the log port" },
      );
      const db = new Database(store.logsPath, { readonly: true });
      const refused = db.prepare("SELECT count(*) AS n FROM logs WHERE seq = ?").get(seq) as { n: number };
      db.close();
      assert.equal(refused.n, 0, "a refused batch stores nothing");
    } finally {
      client.close();
      await thread.close();
      await store.close();
    }
  });
});
