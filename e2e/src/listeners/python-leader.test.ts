/**
 * The Python client with several principals: two or three RpcServers stand in for a standby
 * (refusing writes with NOT_LEADER), a principal in an election, a silent one and the leader.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { API_VERBS, CdktrError, Publisher, RpcServer, type AdvertisedEndpoints, type ApiVerbs } from "@cdktr/protocol";
import { makeTempDir } from "@cdktr/test-utils";
import { python, skipReason } from "./python-helpers.js";

const closers: (() => unknown)[] = [];
after(async () => {
  while (closers.length > 0) await closers.pop()?.();
});

/** A principal: `leader()` null means it leads; undefined means no leader is known (election). */
async function principal(leader: () => AdvertisedEndpoints | null | undefined, publish = "tcp://127.0.0.1:2") {
  const api = new RpcServer<ApiVerbs>({ endpoint: "tcp://127.0.0.1:0", verbs: API_VERBS });
  const done: string[] = [];
  const refused: string[] = [];
  const ends: AdvertisedEndpoints = { api: "", logs: "tcp://127.0.0.1:1", publish };
  const gate = (verb: string): void => {
    const l = leader();
    if (l === null) {
      done.push(verb);
      return;
    }
    refused.push(verb);
    throw new CdktrError("NOT_LEADER", "a standby", l === undefined ? {} : { leader: l });
  };
  api
    .handle("ping", () => {
      const l = leader();
      return {
        principalId: "p",
        version: "1",
        time: new Date().toISOString(),
        role: l === null ? ("leader" as const) : ("standby" as const),
        leader: l === null ? ends : (l ?? null),
      };
    })
    .handle("runWorkflow", () => {
      gate("runWorkflow");
      return { runId: "r1", duplicate: false, skipped: false, status: "QUEUED" };
    })
    .handle("cancelRun", () => {
      gate("cancelRun");
      return { runId: "r1", status: "CANCELLED", cancelled: true };
    });
  ends.api = await api.bind();
  closers.push(() => api.close());
  return { ends, done, refused };
}

/** Takes requests and answers none of them in time (hung, or cut off after receiving). */
async function silent(): Promise<string> {
  const api = new RpcServer<ApiVerbs>({ endpoint: "tcp://127.0.0.1:0", verbs: API_VERBS, closeTimeoutMs: 0 });
  // Never answers while a client waits: rejecting when the request's deadline aborts the handler
  // would send a SHUTTING_DOWN reply that races the client's own timeout.
  const hang = (): Promise<never> =>
    new Promise((_resolve, reject) => {
      setTimeout(() => reject(new CdktrError("SHUTTING_DOWN", "hung")), 30_000).unref();
    });
  api.handle("ping", hang).handle("runWorkflow", hang).handle("cancelRun", hang);
  const endpoint = await api.bind();
  closers.push(() => api.close());
  return endpoint;
}

const SCRIPT = `
import json, os
from cdktr import Principal
p = Principal(key=False, timeout_ms=700, retries=0)
out = {"endpoints": p.endpoints}
r = p.run_workflow("wf")
out["run"] = {"success": r.success, "run_id": r.run_id, "error": r.error}
out["endpoint"] = p.endpoint
out["leader"] = p.ping().success and p.leader
c = p.cancel_run("r1")
out["cancel"] = c.success
if os.environ.get("UNKEYED"):
    try:
        p.request("runWorkflow", {"workflowId": "wf", "source": "py"})
        out["unkeyed"] = "sent"
    except Exception as e:
        out["unkeyed"] = getattr(e, "code", str(e))
print(json.dumps(out))
p.close()
`;

describe("python client with several principals", { skip: skipReason() }, () => {
  test("follows a standby's NOT_LEADER to the leader it names, and learns the leader's endpoints", async () => {
    let leaderEnds: AdvertisedEndpoints | null = null;
    const standby = await principal(() => leaderEnds);
    const leader = await principal(() => null);
    leaderEnds = leader.ends;
    const out = await python(SCRIPT, [], { CDKTR_PRINCIPAL_ENDPOINTS: `${standby.ends.api},${leader.ends.api}` });
    assert.deepEqual(out.run, { success: true, run_id: "r1", error: null });
    assert.equal(out.endpoint, leader.ends.api);
    assert.deepEqual(out.leader, leader.ends);
    assert.equal(out.cancel, true);
    assert.deepEqual(standby.refused, ["runWorkflow"]);
    assert.deepEqual(leader.done, ["runWorkflow", "cancelRun"]);
  });

  test("an election (NOT_LEADER without a leader) backs off and moves on, past a silent principal, to the leader", async () => {
    const electing = await principal(() => undefined);
    const hung = await silent();
    const leader = await principal(() => null);
    const out = await python(SCRIPT, [], {
      CDKTR_PRINCIPAL_ENDPOINTS: `${electing.ends.api},${hung},${leader.ends.api}`,
      UNKEYED: "1",
    });
    assert.deepEqual(out.run, { success: true, run_id: "r1", error: null }, JSON.stringify(out));
    assert.equal(out.endpoint, leader.ends.api);
    assert.deepEqual(electing.refused, ["runWorkflow"]);
    assert.equal(out.cancel, true);
    // Once at the leader, an unkeyed trigger is sent there once and answered.
    assert.equal(out.unkeyed, "sent");
    assert.deepEqual(leader.done, ["runWorkflow", "cancelRun", "runWorkflow"]);
  });

  test("an unkeyed trigger sent to a silent principal is not resent elsewhere", async () => {
    const hung = await silent();
    const leader = await principal(() => null);
    const script = `
import json
from cdktr import Principal
p = Principal(key=False, timeout_ms=500, retries=0)
try:
    p.request("runWorkflow", {"workflowId": "wf", "source": "py"})
    out = "sent"
except Exception as e:
    out = getattr(e, "code", str(e))
then = p.cancel_run("r1").success
print(json.dumps({"unkeyed": out, "then": then, "endpoint": p.endpoint}))
`;
    const out = await python(script, [], { CDKTR_PRINCIPAL_ENDPOINTS: `${hung},${leader.ends.api}` });
    assert.equal(out.unkeyed, "TIMEOUT");
    assert.equal(out.then, true, "the next call moved to the other principal");
    assert.deepEqual(leader.done, ["cancelRun"]);
  });

  test("a Subscriber following a Principal moves its subscriptions to the new leader's publish socket", async () => {
    const pubs = [new Publisher({ endpoint: "tcp://127.0.0.1:0" }), new Publisher({ endpoint: "tcp://127.0.0.1:0" })];
    const [pubA, pubB] = pubs as [Publisher, Publisher];
    const [atA, atB] = [await pubA.bind(), await pubB.bind()];
    closers.push(
      () => pubA.close(),
      () => pubB.close(),
    );
    let leads: "A" | "B" = "A";
    const a = await principal(() => (leads === "A" ? null : b.ends), atA);
    const b = await principal(() => (leads === "B" ? null : a.ends), atB);
    const mark = join(makeTempDir("cdktr-py-follow-"), "got-a");
    let running = true;
    const publishing = (async () => {
      while (running) {
        if (leads === "A" && existsSync(mark)) leads = "B";
        (leads === "A" ? pubA : pubB).publish("news|x|", { from: leads });
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const script = `
import json, os, time
from cdktr import Principal, Subscriber
p = Principal(key=False, timeout_ms=700, retries=0)
s = Subscriber(key=False, follow=p)
first = s.endpoint
s.subscribe("news|")
got = []
deadline = time.monotonic() + 30
while time.monotonic() < deadline and "B" not in got:
    m = s.receive(timeout_ms=200)
    if m is None or m[1]["from"] in got:
        continue
    got.append(m[1]["from"])
    if m[1]["from"] == "A":
        open(os.environ["MARK"], "w").close()
print(json.dumps({"got": got, "first": first, "last": s.endpoint}))
`;
    try {
      const out = await python(script, [], { CDKTR_PRINCIPAL_ENDPOINTS: `${b.ends.api},${a.ends.api}`, MARK: mark });
      assert.deepEqual(out, { got: ["A", "B"], first: atA, last: atB });
    } finally {
      running = false;
      await publishing;
    }
  });
});
