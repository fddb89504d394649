/**
 * The Python client (`clients/python`, package `cdktr` on pyzmq) against a real principal and
 * agent: scripts run with /usr/bin/python3 exactly as a user would write them (the seed's
 * EventListener style), and report what they saw as JSON on stdout.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { cleanup, freePort, makeTempDir, startStack, workflowYaml, type PrincipalFixture } from "@cdktr/test-utils";
import { CLIENT_TIMEOUT_MS } from "./helpers.js";

const PYTHON = "/usr/bin/python3";
/** The Python client of the repository (not a workspace: e2e/dist/listeners -> clients/python). */
const CLIENT_DIR = fileURLToPath(new URL("../../../clients/python", import.meta.url));

/** A skip message when Python is missing; with `CI` set that is a failure instead. */
function skipReason(): string | undefined {
  if (existsSync(PYTHON)) return undefined;
  const msg = `${PYTHON} is missing (install python3 and python3-zmq)`;
  if (process.env.CI !== undefined && process.env.CI !== "") throw new Error(`${msg}; CI is set: Python is required`);
  return msg;
}

/** Run a Python script; resolve with its stdout parsed as JSON. */
function python(script: string, args: string[], env: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const dir = makeTempDir("cdktr-py-");
  const file = join(dir, "script.py");
  writeFileSync(file, script);
  return new Promise((resolve, reject) => {
    execFile(
      PYTHON,
      [file, ...args],
      {
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          PYTHONPATH: CLIENT_DIR,
          PYTHONDONTWRITEBYTECODE: "1",
          ...env,
        },
        timeout: 60_000,
      },
      (err, stdout, stderr) => {
        if (err !== null) {
          reject(new Error(`python failed: ${err.message}\nstdout: ${stdout}\nstderr: ${stderr}`));
          return;
        }
        try {
          resolve(JSON.parse(stdout.trim().split("\n").pop() ?? "") as Record<string, unknown>);
        } catch {
          reject(new Error(`python printed no JSON: ${stdout}\nstderr: ${stderr}`));
        }
      },
    );
  });
}

const WORKFLOW = workflowYaml({
  name: "Py",
  header: ["params:", '  greeting: {type: string, default: "hi"}'],
  tasks: { say: { name: "Say", cmd: "echo", args: ["hello"] } },
});

/** A listener written the way the seed's examples are: no super().__init__(), self.principal set. */
const LISTENER_SCRIPT = `
import json, os, sys
from cdktr import EventListener, Principal, Result

class OneShotListener(EventListener):
    def __init__(self, principal_host="localhost", principal_port=5561):
        self.principal = Principal(host=principal_host, port=principal_port)
        self.outcomes = []

    def start_listening(self):
        # one "event", then stop
        self.outcomes.append(self.run_workflow("py", params={"greeting": "bonjour"}, idempotency_key="evt-1"))
        self.outcomes.append(self.run_workflow("py", params={"greeting": "bonjour"}, idempotency_key="evt-1"))
        self.outcomes.append(self.run_workflow("no-such-workflow"))

port = int(sys.argv[1])
listener = OneShotListener(principal_host="127.0.0.1", principal_port=port)
listener.start_listening()
first, again, unknown = listener.outcomes
p = listener.principal
final = p.wait_for_run(first.run_id, timeout_s=30) if first.success else None
runs = p.list_runs(workflow_id="py")
logs = p.query_logs(workflow_instance_id=first.run_id, limit=10) if first.success else None
print(json.dumps({
    "isResult": isinstance(first, Result),
    "first": {"success": first.success, "error": first.error, "run_id": first.run_id, "duplicate": first.duplicate},
    "again": {"success": again.success, "run_id": again.run_id, "duplicate": again.duplicate},
    "unknown": {"success": unknown.success, "error": unknown.error, "code": unknown.code, "run_id": unknown.run_id, "payload": unknown.payload},
    "final": final.payload["run"] if final is not None and final.success else (final.error if final is not None else None),
    "tasks": [t["status"] for t in final.payload["tasks"]] if final is not None and final.success else None,
    "runCount": len(runs.payload["runs"]) if runs.success else runs.error,
    "logLines": [l["line"] for l in logs.payload["lines"]] if logs is not None and logs.success else None,
    "ping": p.ping().success,
    "workflows": sorted(w["id"] for w in p.list_workflows().payload["workflows"]),
    "agents": p.list_agents().success,
    "envUntouched": "CDKTR_PRINCIPAL_HOST" not in os.environ and "CDKTR_PRINCIPAL_PORT" not in os.environ,
}))
p.close()
`;

const DOWN_SCRIPT = `
import json, sys, time
from cdktr import EventListener, Principal

class Quiet(EventListener):
    def start_listening(self):
        pass

l = Quiet(principal=Principal(host="127.0.0.1", port=int(sys.argv[1]), timeout_ms=500, retries=0))
t0 = time.time()
r = l.run_workflow("anything")
print(json.dumps({"success": r.success, "code": r.code, "error": r.error, "retryable": r.retryable, "seconds": time.time() - t0}))
`;

describe("python client", { skip: skipReason() }, () => {
  let f: PrincipalFixture;

  before(async () => {
    // The run must reach its final state: a missing agent build is a failure, not a skip.
    // Authentication off: the Python client speaks plaintext until it gets CURVE and `hello`
    // (its own part of the secure-wire issue); then this suite drops `auth: "off"`.
    const stack = await startStack({
      auth: "off",
      workflows: { "py.yml": WORKFLOW },
      clientTimeoutMs: CLIENT_TIMEOUT_MS,
      agent: { env: { CDKTR_AGENT_ID: "py-test-agent", CDKTR_AGENT_FETCH_WAIT_MS: "1000" } },
    });
    f = stack.principal;
  });
  after(cleanup);

  test("an EventListener subclass triggers a run, reads its final state and logs; a repeated key is a duplicate; an unknown workflow fails with the error", async () => {
    const out = await python(LISTENER_SCRIPT, [String(f.ports.api)]);
    assert.equal(out.isResult, true);
    const first = out.first as Record<string, unknown>;
    assert.equal(first.success, true, String(first.error));
    assert.equal(first.error, null);
    assert.equal(typeof first.run_id, "string");
    assert.deepEqual(out.again, { success: true, run_id: first.run_id, duplicate: true });
    const unknown = out.unknown as Record<string, unknown>;
    assert.equal(unknown.success, false);
    assert.equal(unknown.code, "WORKFLOW_NOT_FOUND");
    assert.match(String(unknown.error), /^WORKFLOW_NOT_FOUND: .*no-such-workflow/);
    assert.equal(unknown.run_id, null);
    assert.equal(unknown.payload, null);
    assert.equal(out.runCount, 1, "one run for two triggers with the same key, none for the unknown workflow");
    assert.equal(out.ping, true);
    assert.deepEqual(out.workflows, ["py"]);
    assert.equal(out.agents, true);
    assert.equal(out.envUntouched, true);

    const run = await f.client.getRun(String(first.run_id));
    assert.deepEqual(run.run.params, { greeting: "bonjour" });
    assert.equal(run.run.source, "OneShotListener");
    const final = out.final as Record<string, unknown>;
    assert.equal(final.status, "COMPLETED", JSON.stringify(final));
    assert.equal(final.runId, first.run_id);
    assert.deepEqual(out.tasks, ["COMPLETED"]);
    assert.ok((out.logLines as string[]).includes("hello"), JSON.stringify(out.logLines));
  });

  test("an unreachable principal gives success == False with a retryable error, within the timeout", async () => {
    const out = await python(DOWN_SCRIPT, [String(await freePort())]);
    assert.equal(out.success, false);
    assert.ok(out.code === "UNAVAILABLE" || out.code === "TIMEOUT", String(out.code));
    assert.equal(out.retryable, true);
    assert.match(String(out.error), /is the principal running/);
    assert.ok(Number(out.seconds) < 5, `took ${String(out.seconds)} s with a 0.5 s timeout`);
  });
});
