import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import {
  API_VERBS,
  CdktrError,
  noopLogger,
  PrincipalClient,
  RpcServer,
  type ApiVerbs,
  type Assignment,
} from "@cdktr/protocol";
import { runRecord, waitFor, workflowDefinition } from "@cdktr/test-utils";
import { Notifier } from "./notifier.js";
import { PrincipalSession, type PrincipalSessionConfig, type PrincipalSessionOptions } from "./principal-session.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function assignment(runId: string, token: string): Assignment {
  return {
    run: runRecord({ runId, status: "ASSIGNED", agentId: "a1" }),
    workflow: workflowDefinition({ id: "wf", hash: "h" }),
    token,
    leaseExpiresAt: new Date(Date.now() + 30_000).toISOString(),
  };
}

/** The runs side of the session: records what it was asked to start and cancel. */
function recordingRuns(running: string[] = [], onStart: (a: Assignment) => void = () => {}) {
  const started: string[] = [];
  const cancelled: { ids: readonly string[]; from: string }[] = [];
  return {
    size: 0,
    started,
    cancelled,
    start: (a: Assignment) => {
      onStart(a);
      started.push(a.run.runId);
      return true;
    },
    cancel: (ids: readonly string[], from: string) => {
      if (ids.length > 0) cancelled.push({ ids, from });
    },
    runningRuns: () => running,
  };
}

/** A real RpcServer standing in for the principal, a real client, and a session between them. */
async function connect(
  setup: (server: RpcServer<ApiVerbs>) => void,
  runs: ReturnType<typeof recordingRuns> | (Omit<ReturnType<typeof recordingRuns>, "start"> & { start: () => boolean }),
  config: Partial<PrincipalSessionConfig> = {},
  extra: Partial<Pick<PrincipalSessionOptions, "session" | "predecessor" | "onPredecessorTold" | "holdWork">> = {},
): Promise<PrincipalSession> {
  const server = new RpcServer({ endpoint: "tcp://127.0.0.1:0", verbs: API_VERBS });
  setup(server);
  const endpoint = await server.bind();
  // Plaintext like the stand-in server, whatever key files this machine's HOME holds.
  const client = new PrincipalClient({ endpoint, timeoutMs: 2000, env: {}, key: null });
  const session = new PrincipalSession({
    config: {
      agentId: "a1",
      host: "test-host",
      labels: [],
      maxConcurrency: 1,
      heartbeatIntervalMs: 10_000,
      fetchWaitMs: 50,
      ...config,
    },
    version: "9.9.9",
    client,
    runs,
    session: "sess-test",
    wake: new Notifier(),
    logger: noopLogger,
    ...extra,
  });
  cleanups.push(async () => {
    session.close();
    client.close();
    await session.closed();
    await server.close();
  });
  return session;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const registered = { heartbeatIntervalMs: 10_000, heartbeatTimeoutMs: 30_000, cancel: [] };

test("an assignment starts at once; every fetch carries the session and its number, and heartbeats say which are settled", async () => {
  const queue = [assignment("r-go", "t1"), assignment("r-held", "t2")];
  const fetches: { session?: string | undefined; seq?: number | undefined }[] = [];
  const beats: { runningRuns: string[]; session?: string | undefined; settledThrough?: number | undefined }[] = [];
  let hold: string | null = null;
  const running: string[] = [];
  const runs = recordingRuns(running, (a) => running.push(a.run.runId));
  const session = await connect(
    (s) => {
      s.handle("registerAgent", () => ({ ...registered, heartbeatIntervalMs: 50 }));
      s.handle("heartbeat", ({ runningRuns, session: sid, settledThrough }) => {
        beats.push({ runningRuns, session: sid, settledThrough });
        return { cancel: [], reregister: false };
      });
      s.handle("fetchWork", async ({ session: sid, seq }) => {
        fetches.push({ session: sid, seq });
        const next = queue.shift();
        // The second assignment arrives while work is held (a full disk, say): it is not started.
        if (next?.run.runId === "r-held") hold = "disk full";
        if (next === undefined) await sleep(20);
        return { assignment: next ?? null, cancel: [] };
      });
    },
    runs,
    { maxConcurrency: 1 },
    { session: "sess-0001", holdWork: () => hold },
  );
  assert.equal(await session.start(), true);
  await waitFor(() => fetches.length >= 2, { timeoutMs: 5000, what: "two fetches" });
  assert.deepEqual(runs.started, ["r-go"], "started on the assignment alone, without any confirmation");
  assert.deepEqual(fetches.slice(0, 2), [
    { session: "sess-0001", seq: 1 },
    { session: "sess-0001", seq: 2 },
  ]);
  // Once fetch 2 is settled (its run dropped), a heartbeat says so and lists only the started run.
  await waitFor(() => beats.some((b) => (b.settledThrough ?? 0) >= 2), { timeoutMs: 5000, what: "fetch 2 settled" });
  const beat = beats.find((b) => (b.settledThrough ?? 0) >= 2);
  assert.equal(beat?.session, "sess-0001");
  assert.deepEqual(beat?.runningRuns, ["r-go"]);
  assert.equal(session.settledThrough() >= 2, true);
});

test("a run whose start cannot be journaled is not started, and its fetch counts as settled", async () => {
  const queue = [assignment("r-nojournal", "t1")];
  const runs = { ...recordingRuns(), start: () => false };
  let fetched = 0;
  const session = await connect((s) => {
    s.handle("registerAgent", () => registered);
    s.handle("fetchWork", async () => {
      fetched++;
      const next = queue.shift();
      if (next === undefined) await sleep(20);
      return { assignment: next ?? null, cancel: [] };
    });
  }, runs);
  assert.equal(await session.start(), true);
  await waitFor(() => fetched >= 2, { timeoutMs: 5000, what: "a second fetch" });
  assert.ok(session.settledThrough() >= 1);
});

test("the predecessor goes with registrations until one succeeds, then is forgotten", async () => {
  const bodies: unknown[] = [];
  let told = 0;
  const session = await connect(
    (s) => {
      s.handle("registerAgent", ({ predecessor }) => {
        bodies.push(predecessor);
        if (bodies.length === 1) throw new CdktrError("SHUTTING_DOWN", "principal restarting");
        return registered;
      });
      s.handle("heartbeat", () => ({ cancel: [], reregister: false }));
      s.handle("fetchWork", async () => {
        await sleep(20);
        return { assignment: null, cancel: [] };
      });
    },
    recordingRuns(),
    {},
    {
      session: "sess-0002",
      predecessor: () => ({ session: "sess-0001", started: ["r-a"] }),
      onPredecessorTold: () => told++,
    },
  );
  await session.start();
  await waitFor(() => session.registered, { timeoutMs: 10_000, what: "registered" });
  assert.deepEqual(bodies.slice(0, 2), [
    { session: "sess-0001", started: ["r-a"] },
    { session: "sess-0001", started: ["r-a"] },
  ]);
  assert.equal(told, 1);
  session.markUnregistered();
  await waitFor(() => bodies.length >= 3, { timeoutMs: 5000, what: "registered again" });
  assert.equal(bodies[2], undefined, "not sent again");
});

test("a refused registration is retried after a backoff; heartbeats then report the running runs", async () => {
  const registerAt: number[] = [];
  const registerBodies: { version: string; runningRuns: string[] }[] = [];
  const heartbeats: string[][] = [];
  const runs = recordingRuns(["r-running"]);
  const session = await connect((s) => {
    s.handle("registerAgent", ({ runningRuns, version }) => {
      registerAt.push(Date.now());
      registerBodies.push({ version, runningRuns });
      if (registerAt.length <= 3) throw new CdktrError("SHUTTING_DOWN", "principal restarting");
      return { ...registered, heartbeatIntervalMs: 50 };
    });
    s.handle("heartbeat", ({ runningRuns }) => {
      heartbeats.push(runningRuns);
      return { cancel: [], reregister: false };
    });
    s.handle("fetchWork", async () => {
      await sleep(20);
      return { assignment: null, cancel: [] };
    });
  }, runs);
  assert.equal(await session.start(), false, "the first registration failed");
  await waitFor(() => session.registered, { timeoutMs: 10_000, what: "registered" });
  assert.equal(registerAt.length, 4);
  for (const body of registerBodies) assert.deepEqual(body, { version: "9.9.9", runningRuns: ["r-running"] });
  // The fetch loop registers at once, then waits 250 ms (125..250 with jitter), then 500 ms (250..500).
  const gaps = registerAt.slice(1).map((t, i) => t - (registerAt[i] as number));
  assert.ok((gaps[1] ?? 0) >= 120, `first backoff ${gaps[1]} ms`);
  assert.ok((gaps[2] ?? 0) >= 245, `second backoff ${gaps[2]} ms`);
  await waitFor(() => heartbeats.length >= 2, { timeoutMs: 5000, what: "heartbeats at the principal's interval" });
  assert.deepEqual(heartbeats[0], ["r-running"]);
});

test("a principal that forgot the agent gets a new registration; its cancel lists reach the runs", async () => {
  let registrations = 0;
  let beats = 0;
  const runs = recordingRuns();
  const session = await connect((s) => {
    s.handle("registerAgent", () => {
      registrations++;
      return { ...registered, heartbeatIntervalMs: 50 };
    });
    s.handle("heartbeat", () => {
      beats++;
      return beats === 1 ? { cancel: ["r1"], reregister: true } : { cancel: [], reregister: false };
    });
    s.handle("fetchWork", async () => {
      await sleep(20);
      return { assignment: null, cancel: beats === 0 ? [] : ["r2"] };
    });
  }, runs);
  assert.equal(await session.start(), true);
  await waitFor(() => registrations >= 2, { timeoutMs: 5000, what: "registered again" });
  await waitFor(() => runs.cancelled.some((c) => c.from === "fetchWork"), { timeoutMs: 5000, what: "fetch cancel" });
  assert.deepEqual(
    runs.cancelled.find((c) => c.from === "heartbeat"),
    { ids: ["r1"], from: "heartbeat" },
  );
  assert.deepEqual(runs.cancelled.find((c) => c.from === "fetchWork")?.ids, ["r2"]);
});

test("empty fetchWork replies that come back at once are followed by growing waits, not a busy loop", async () => {
  let fetches = 0;
  const runs = recordingRuns();
  const session = await connect(
    (s) => {
      s.handle("registerAgent", () => registered);
      s.handle("fetchWork", () => {
        fetches++;
        return { assignment: null, cancel: [] };
      });
    },
    runs,
    { fetchWaitMs: 20_000 },
  );
  assert.equal(await session.start(), true);
  await sleep(1500);
  // 50 ms doubling to 1 s (jittered): about 6 fetches in 1.5 s; without the waits, thousands.
  assert.ok(fetches >= 2 && fetches <= 40, `${fetches} fetches in 1.5 s`);
});
