/**
 * Listeners and the cron scheduler with several principals: real sockets, two RpcServers standing
 * in for a standby and a leader (the real multi-principal tests are in e2e).
 */
import { afterEach, it } from "node:test";
import assert from "node:assert/strict";
import {
  API_VERBS,
  CdktrError,
  PrincipalClient,
  Publisher,
  RpcServer,
  topics,
  type AdvertisedEndpoints,
  type ApiVerbs,
} from "@cdktr/protocol";
import { waitFor } from "@cdktr/test-utils";
import { CronScheduler } from "../scheduler/cron-scheduler.js";
import { EventListener } from "./event-listener.js";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

class Idle extends EventListener {
  protected async startListening(signal: AbortSignal): Promise<void> {
    await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
  }
}

/** A principal's API and publish sockets; a standby refuses triggers with NOT_LEADER naming `leader()`. */
async function principal(leader: () => AdvertisedEndpoints | null) {
  const api = new RpcServer<ApiVerbs>({ endpoint: "tcp://127.0.0.1:0", verbs: API_VERBS });
  const pub = new Publisher({ endpoint: "tcp://127.0.0.1:0" });
  const triggered: string[] = [];
  let lists = 0;
  api
    .handle("runWorkflow", ({ workflowId }) => {
      const l = leader();
      if (l !== null) throw new CdktrError("NOT_LEADER", "a standby", { leader: l });
      triggered.push(workflowId);
      return { runId: "r1", duplicate: false, skipped: false, status: "QUEUED" };
    })
    .handle("listWorkflows", () => {
      lists++;
      return { version: 1, full: true, workflows: [], removed: [], errors: [] };
    });
  const ends = { api: await api.bind(), logs: "tcp://127.0.0.1:1", publish: await pub.bind() };
  cleanups.push(
    () => api.close(),
    () => pub.close(),
  );
  return { ends, pub, triggered, lists: () => lists };
}

it("an EventListener with no principal option reads CDKTR_PRINCIPAL_ENDPOINTS and triggers on the leader", async () => {
  let leaderEnds: AdvertisedEndpoints | null = null;
  const standby = await principal(() => leaderEnds);
  const leader = await principal(() => null);
  leaderEnds = leader.ends;
  const l = new Idle({ env: { CDKTR_PRINCIPAL_ENDPOINTS: `${standby.ends.api},${leader.ends.api}` }, key: null });
  cleanups.push(() => l.stop());
  const result = await l.runWorkflow("wf");
  assert.equal(result.success, true, JSON.stringify(result));
  assert.deepEqual(leader.triggered, ["wf"]);
  assert.deepEqual(standby.triggered, []);
});

it("the cron scheduler's announcement subscription moves to the new leader's publish socket", async () => {
  const a = await principal(() => null);
  const b = await principal(() => null);
  const client = new PrincipalClient({ endpoints: [a.ends.api, b.ends.api], env: {}, key: null });
  cleanups.push(() => client.close());
  client.leaderWatch.set(a.ends);
  const s = new CronScheduler({ principal: client, key: null, refreshIntervalMs: 3_600_000 });
  cleanups.push(() => s.stop());
  await s.start();
  await waitFor(() => a.lists() >= 1, { what: "the initial load" });
  const announce = (p: typeof a, version: number) =>
    p.pub.publish(topics.workflows(), { version, changed: [], removed: [] });
  const loadsBefore = a.lists() + b.lists();
  await waitFor(
    () => {
      announce(a, 2);
      return a.lists() + b.lists() > loadsBefore;
    },
    { what: "a refresh on A's announcement" },
  );
  client.leaderWatch.set(b.ends);
  const loadsAfter = a.lists() + b.lists();
  await waitFor(
    () => {
      announce(b, 3);
      return a.lists() + b.lists() > loadsAfter;
    },
    { what: "a refresh on B's announcement" },
  );
});
