import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import {
  API_VERBS,
  CdktrError,
  LOG_VERBS,
  RpcServer,
  type AdvertisedEndpoints,
  type ApiVerbs,
  type LogVerbs,
} from "@cdktr/protocol";
import { makeTempDir, runRecord, waitFor, workflowDefinition } from "@cdktr/test-utils";
import { createAgent, type Agent } from "../app.js";
import { loadConfig } from "../config.js";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

type Name = "A" | "B";

/** Two principals on one "database": whichever `state.leader` names leads, the other refuses writes. */
interface Principal {
  ends: AdvertisedEndpoints;
  /** `verb` (and for statuses `verb:status`) of every request it executed. */
  done: string[];
  refused: string[];
  registeredRuns: string[][];
  logLines: string[];
}

async function principals(onConfirm: () => void): Promise<{ state: { leader: Name }; p: Record<Name, Principal> }> {
  const state = { leader: "A" as Name };
  const p = {} as Record<Name, Principal>;
  let assigned = false;
  for (const name of ["A", "B"] as const) {
    const api = new RpcServer<ApiVerbs>({ endpoint: "tcp://127.0.0.1:0", verbs: API_VERBS });
    const logs = new RpcServer<LogVerbs>({ endpoint: "tcp://127.0.0.1:0", verbs: LOG_VERBS });
    const me: Principal = {
      ends: { api: "", logs: "", publish: "" },
      done: [],
      refused: [],
      registeredRuns: [],
      logLines: [],
    };
    p[name] = me;
    const gate = (what: string): void => {
      if (state.leader === name) {
        me.done.push(what);
        return;
      }
      me.refused.push(what);
      throw new CdktrError("NOT_LEADER", `${name} is a standby`, { leader: p[state.leader].ends });
    };
    api
      .handle("registerAgent", ({ runningRuns }) => {
        gate("registerAgent");
        me.registeredRuns.push(runningRuns);
        return { heartbeatIntervalMs: 200, heartbeatTimeoutMs: 5000, cancel: [], leader: me.ends };
      })
      .handle("heartbeat", () => {
        gate("heartbeat");
        return { cancel: [], reregister: false };
      })
      .handle("fetchWork", async ({ waitMs }) => {
        gate("fetchWork");
        if (name === "A" && !assigned) {
          assigned = true;
          return {
            assignment: {
              run: runRecord({ runId: "r1", status: "ASSIGNED", agentId: "a1" }),
              workflow: workflowDefinition({
                id: "wf",
                tasks: {
                  t: {
                    id: "t",
                    name: "t",
                    description: null,
                    depends: [],
                    config: { type: "subprocess", cmd: "sh", args: ["-c", "sleep 0.3; echo hello from r1"] },
                    env: {},
                    workingDirectory: null,
                    timeoutMs: null,
                    retries: { count: 0, backoffMs: 0, factor: 1 },
                  },
                },
              }),
              token: "tok",
              leaseExpiresAt: new Date(Date.now() + 30_000).toISOString(),
            },
            cancel: [],
          };
        }
        await new Promise((r) => setTimeout(r, Math.min(waitMs, 100)));
        return { assignment: null, cancel: [] };
      })
      .handle("confirmAssignment", () => {
        gate("confirmAssignment");
        onConfirm();
        return { run: runRecord({ runId: "r1", status: "RUNNING", agentId: "a1" }) };
      })
      .handle("runStatus", ({ status }) => {
        gate(`runStatus:${status}`);
        return { applied: true, status };
      })
      .handle("taskStatus", ({ status }) => {
        gate(`taskStatus:${status}`);
        return { applied: true };
      });
    logs.handle("logBatch", ({ lines }) => {
      gate("logBatch");
      me.logLines.push(...lines.map((l) => l.line));
      return { stored: lines.length, duplicates: 0 };
    });
    me.ends = { api: await api.bind(), logs: await logs.bind(), publish: "tcp://127.0.0.1:1" };
    cleanups.push(
      () => api.close(),
      () => logs.close(),
    );
  }
  return { state, p };
}

test("the leader moves while a run goes on: the agent registers with the new leader and delivers every status and log line there", async () => {
  let flip = (): void => {};
  const { state, p } = await principals(() => flip());
  // A loses the lead right after confirming the run: everything after goes to B.
  flip = () => {
    state.leader = "B";
  };
  const config = loadConfig({
    CDKTR_PRINCIPAL_ENDPOINTS: `${p.A.ends.api},${p.B.ends.api}`,
    CDKTR_AGENT_ID: "a1",
    CDKTR_AGENT_DATA_DIR: makeTempDir("cdktr-agent-leader-"),
    CDKTR_AGENT_FETCH_WAIT_MS: "100",
    CDKTR_AGENT_HEARTBEAT_INTERVAL_MS: "200",
    CDKTR_AGENT_MAX_CONCURRENCY: "1",
    CDKTR_AGENT_CONTAINMENT: "proc",
    CDKTR_AGENT_FSYNC: "false",
  });
  const agent: Agent = createAgent(config, { key: null, env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } });
  cleanups.push(() => agent.stop());
  const ready = await agent.start();
  assert.equal(ready.registered, true);
  assert.equal(ready.principal, p.A.ends.api);

  await waitFor(() => p.B.done.includes("runStatus:COMPLETED"), { timeoutMs: 20_000 });
  await waitFor(() => p.B.logLines.includes("hello from r1"), { timeoutMs: 10_000 });
  assert.ok(p.B.done.includes("registerAgent"), `B registered the agent: ${p.B.done.join(", ")}`);
  assert.ok(
    p.B.registeredRuns.some((runs) => runs.includes("r1")),
    `the registration with B reported the running run: ${JSON.stringify(p.B.registeredRuns)}`,
  );
  assert.ok(p.B.done.includes("taskStatus:COMPLETED"), `B got the task's status: ${p.B.done.join(", ")}`);
  assert.ok(p.B.done.includes("taskStatus:RUNNING"), `B got the task's RUNNING: ${p.B.done.join(", ")}`);
  // Nothing the agent sent after the move was executed by A.
  assert.deepEqual(
    p.A.done.filter((v) => v.startsWith("runStatus") || v.startsWith("taskStatus") || v === "logBatch"),
    [],
  );
  assert.ok(p.A.done.includes("confirmAssignment"));
  // Once moved, the agent talks to B only: its fetches and heartbeats now go there.
  const refusedBefore = p.A.refused.length;
  const fetchesBefore = p.B.done.filter((v) => v === "fetchWork").length;
  await waitFor(() => p.B.done.filter((v) => v === "fetchWork").length > fetchesBefore + 2, { timeoutMs: 5000 });
  assert.equal(p.A.refused.length, refusedBefore);
});
