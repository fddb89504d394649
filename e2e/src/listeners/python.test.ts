/**
 * The Python client (`clients/python`, package `cdktr` on pyzmq) against a real principal and
 * agent with authentication on: scripts run with /usr/bin/python3 exactly as a user would write
 * them (the seed's EventListener style), find their key as every cdktr client does (the local
 * keys of the principal's HOME, or CDKTR_KEY_FILE), and report what they saw as JSON on stdout.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, copyFileSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  cleanup,
  freePort,
  makeTempDir,
  startPrincipal,
  startStack,
  waitFor,
  workflowYaml,
  type PrincipalFixture,
} from "@cdktr/test-utils";
import { CLIENT_TIMEOUT_MS } from "./helpers.js";
import { python, skipReason } from "./python-helpers.js";

const WORKFLOW = workflowYaml({
  name: "Py",
  header: ["params:", '  greeting: {type: string, default: "hi"}'],
  tasks: { say: { name: "Say", cmd: "echo", args: ["hello"] } },
});

/** A run that lasts long enough for a subscription made after triggering it to see it end. */
const SLOW_WORKFLOW = workflowYaml({
  name: "Py slow",
  tasks: {
    wait: { name: "Wait", cmd: "sleep", args: ["1.5"] },
    say: { cmd: "echo", args: ["done"], depends: ["wait"] },
  },
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

/** `run_workflows` on the principal at argv[1] (one request), then on a dead port (argv[2]). */
const BATCH_SCRIPT = `
import json, sys
from cdktr import Principal

p = Principal(host="127.0.0.1", port=int(sys.argv[1]))
rs = p.run_workflows([
    {"workflow_id": "py", "params": {"greeting": "hi"}, "idempotency_key": "batch-1"},
    {"workflow_id": "no-such-workflow"},
    {"workflow_id": "py", "params": {"greeting": "hi"}, "idempotency_key": "batch-1"},
], source="py-batch")
dead = Principal(host="127.0.0.1", port=int(sys.argv[2]), timeout_ms=500, retries=0)
down = dead.run_workflows([{"workflow_id": "py"}, {"workflow_id": "py"}])
print(json.dumps({
    "results": [{"success": r.success, "code": r.code, "run_id": r.run_id, "duplicate": r.duplicate} for r in rs],
    "down": [{"success": r.success, "retryable": r.retryable} for r in down],
}))
p.close()
dead.close()
`;

/**
 * A trigger key from CDKTR_KEY_FILE, in a HOME with no keys: triggers the slow workflow, follows
 * the run's events with a Subscriber (a trigger key may subscribe to its own runs, by run id),
 * waits for the run and reads it, its logs and the runs it may list.
 */
const KEY_FILE_SCRIPT = `
import json
from cdktr import Principal, Subscriber

p = Principal()
r = p.run_workflow("py-slow", idempotency_key="ci-1")
events = []
with Subscriber() as sub:
    sub.subscribe(f"runs|py-slow|{r.run_id}|")
    while r.success and not any(e[1] == "COMPLETED" for e in events):
        m = sub.receive(timeout_ms=20000)
        if m is None:
            break
        events.append((m[0], m[1]["run"]["status"]))
final = p.wait_for_run(r.run_id, timeout_s=30) if r.success else None
logs = p.query_logs(run_id=r.run_id) if r.success else None
runs = p.list_runs()
print(json.dumps({
    "key": {"name": p.client_key.name, "role": p.client_key.role},
    "identity": p.identity,
    "run": {"success": r.success, "error": r.error, "run_id": r.run_id},
    "events": events,
    "final": final.payload["run"]["status"] if final is not None and final.success else (final.error if final else None),
    "logLines": [l["line"] for l in logs.payload["lines"]] if logs is not None and logs.success else (logs.error if logs else None),
    "runs": [x["runId"] for x in runs.payload["runs"]] if runs.success else runs.error,
}))
p.close()
`;

/** An unenrolled key (argv[2]) and a trigger key (argv[3]) calling verbs of the operator. */
const REFUSED_SCRIPT = `
import json, sys, time
from cdktr import CdktrError, Principal

stranger = Principal(key=sys.argv[1], timeout_ms=500, retries=0)
t0 = time.time()
unknown = stranger.ping()
seconds = time.time() - t0
stranger.close()

trigger = Principal(key=sys.argv[2])
run = trigger.run_workflow("py")
cancel = trigger.cancel_run(run.run_id)
agents = trigger.list_agents()
try:
    trigger.request("listAgents")
    raised = None
except CdktrError as e:
    raised = {"type": type(e).__name__, "code": e.code, "message": e.message, "retryable": e.retryable}
print(json.dumps({
    "unknown": {"success": unknown.success, "code": unknown.code, "error": unknown.error, "retryable": unknown.retryable},
    "seconds": seconds,
    "identity": stranger.identity,
    "run": run.run_id,
    "cancel": {"success": cancel.success, "code": cancel.code, "error": cancel.error, "retryable": cancel.retryable},
    "agents": {"success": agents.success, "code": agents.code},
    "raised": raised,
}))
trigger.close()
`;

/** Bad keys are refused before anything is sent; CDKTR_AUTH=off means no key. */
const BAD_KEYS_SCRIPT = `
import json, os, sys
from cdktr import EventListener, KeyFileError, Principal, Subscriber

def refused(make):
    try:
        make()
        return None
    except KeyFileError as e:
        return {"code": e.code, "message": e.message, "retryable": e.retryable}

unsafe, missing = sys.argv[1], sys.argv[2]
out = {
    "argument": refused(lambda: Principal(key=unsafe)),
    "subscriber": refused(lambda: Subscriber(key=unsafe)),
    "missing": refused(lambda: Principal(key=missing)),
    "badDict": refused(lambda: Principal(key={"name": "x", "publicKey": "short", "secretKey": "s", "principalPublicKey": "p"})),
}
os.environ["CDKTR_KEY_FILE"] = unsafe
out["env"] = refused(lambda: Principal())
out["listener"] = refused(lambda: EventListener(principal=None).run_workflow("py"))
os.environ["CDKTR_AUTH"] = "off"
out["authOff"] = Principal().client_key is None
print(json.dumps(out))
`;

/** An EventListener with no principal and no key: its own client finds local-listeners. */
const LOCAL_LISTENER_SCRIPT = `
import json
from cdktr import EventListener

class Files(EventListener):
    def start_listening(self):
        self.result = self.run_workflow("py", idempotency_key="file:a.csv")

l = Files()
l.start_listening()
print(json.dumps({"run_id": l.result.run_id, "error": l.result.error, "identity": l.principal.identity}))
l.principal.close()
`;

/** One client across a principal restart: ready, then (once the test restarted it) a second call. */
const RESTART_SCRIPT = `
import json, os, sys, time
from cdktr import Principal

class Counting(Principal):
    hellos = 0
    def _hello(self, timeout_ms):
        Counting.hellos += 1
        return super()._hello(timeout_ms)

marker, go = sys.argv[1], sys.argv[2]
p = Counting(timeout_ms=3000)
first = p.list_workflows()
open(marker, "w").close()
end = time.time() + 60
while not os.path.exists(go) and time.time() < end:
    time.sleep(0.05)
second = p.list_workflows()
print(json.dumps({"first": first.success, "second": second.success, "error": second.error,
                  "hellos": Counting.hellos, "identity": p.identity["name"] if p.identity else None}))
p.close()
`;

describe("python client", { skip: skipReason() }, () => {
  let f: PrincipalFixture;

  before(async () => {
    // The run must reach its final state: a missing agent build is a failure, not a skip.
    const stack = await startStack({
      workflows: { "py.yml": WORKFLOW },
      clientTimeoutMs: CLIENT_TIMEOUT_MS,
      agent: { env: { CDKTR_AGENT_ID: "py-test-agent", CDKTR_AGENT_FETCH_WAIT_MS: "1000" } },
    });
    f = stack.principal;
  });
  after(cleanup);

  test("an EventListener subclass triggers a run, reads its final state and logs; a repeated key is a duplicate; an unknown workflow fails with the error", async () => {
    // The principal's HOME, hence its local-operator key; host and port come from the arguments.
    const out = await python(LISTENER_SCRIPT, [String(f.ports.api)], { HOME: f.home });
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
    assert.equal(run.run.triggeredBy, "local-operator", "the client found the local operator key of its HOME");
    const final = out.final as Record<string, unknown>;
    assert.equal(final.status, "COMPLETED", JSON.stringify(final));
    assert.equal(final.runId, first.run_id);
    assert.deepEqual(out.tasks, ["COMPLETED"]);
    assert.ok((out.logLines as string[]).includes("hello"), JSON.stringify(out.logLines));
  });

  test("run_workflows: one result per trigger, in order; an unreachable principal fails each, retryable", async () => {
    const out = await python(BATCH_SCRIPT, [String(f.ports.api), String(await freePort())], { HOME: f.home });
    const results = out.results as {
      success: boolean;
      code: string | null;
      run_id: string | null;
      duplicate: boolean;
    }[];
    assert.deepEqual(
      results.map((r) => [r.success, r.code, r.duplicate]),
      [
        [true, null, false],
        [false, "WORKFLOW_NOT_FOUND", false],
        [true, null, true],
      ],
    );
    assert.equal(results[2]?.run_id, results[0]?.run_id);
    const { run } = await f.client.getRun(String(results[0]?.run_id));
    assert.deepEqual([run.source, run.params], ["py-batch", { greeting: "hi" }]);
    assert.deepEqual(out.down, [
      { success: false, retryable: true },
      { success: false, retryable: true },
    ]);
  });

  test("an unreachable principal gives success == False with a retryable error, within the timeout", async () => {
    const out = await python(DOWN_SCRIPT, [String(await freePort())]);
    assert.equal(out.success, false);
    assert.ok(out.code === "UNAVAILABLE" || out.code === "TIMEOUT", String(out.code));
    assert.equal(out.retryable, true);
    assert.match(String(out.error), /is the principal running/);
    assert.ok(Number(out.seconds) < 5, `took ${String(out.seconds)} s with a 0.5 s timeout`);
  });

  test("the Python client with a key file triggers and reads a run end to end", async () => {
    // A stack of its own: the suite's principal serves exactly the workflow "py".
    const { principal: s } = await startStack({
      workflows: { "py.yml": WORKFLOW, "py-slow.yml": SLOW_WORKFLOW },
      clientTimeoutMs: CLIENT_TIMEOUT_MS,
      agent: { env: { CDKTR_AGENT_FETCH_WAIT_MS: "1000" } },
    });
    const ci = await s.createKey("py-ci", "trigger", { workflows: ["py", "py-slow"] });
    // Another HOME (no local keys): the key comes from CDKTR_KEY_FILE only.
    const out = await python(KEY_FILE_SCRIPT, [], {
      CDKTR_KEY_FILE: ci.path,
      CDKTR_PRINCIPAL_PORT: String(s.ports.api),
      CDKTR_LOGS_PUBLISHING_PORT: String(s.ports.publish),
    });
    assert.deepEqual(out.key, { name: "py-ci", role: "trigger" });
    assert.deepEqual(out.identity, {
      name: "py-ci",
      role: "trigger",
      scope: "py-ci",
      workflows: ["py", "py-slow"],
      publicKey: ci.key.publicKey,
    });
    const run = out.run as Record<string, unknown>;
    assert.equal(run.success, true, String(run.error));
    const runId = String(run.run_id);
    // the proven subscription to its own run delivered the run's events, up to the final one
    const events = out.events as [string, string][];
    assert.ok(events.length > 0, "events of the run arrived");
    for (const [topic] of events) assert.equal(topic, `runs|py-slow|${runId}|`);
    assert.equal(events.at(-1)?.[1], "COMPLETED", JSON.stringify(events));
    assert.equal(out.final, "COMPLETED");
    assert.ok((out.logLines as string[]).includes("done"), JSON.stringify(out.logLines));
    assert.deepEqual(out.runs, [runId], "a trigger key lists only the runs it triggered");
    const { run: stored } = await s.client.getRun(runId);
    assert.equal(stored.triggeredBy, "py-ci");
    assert.equal(stored.idempotencyKey, "ci-1");
  });

  test("an unenrolled key gets a timeout whose hint names the key; a trigger key's operator calls get PERMISSION_DENIED", async () => {
    const stranger = await f.createKey("py-stranger", "operator", { enroll: false });
    const trigger = await f.createKey("py-trigger", "trigger");
    const out = await python(REFUSED_SCRIPT, [stranger.path, trigger.path], {
      CDKTR_PRINCIPAL_PORT: String(f.ports.api),
    });
    const unknown = out.unknown as Record<string, unknown>;
    assert.equal(unknown.success, false);
    assert.equal(unknown.code, "TIMEOUT");
    assert.equal(unknown.retryable, true);
    assert.match(String(unknown.error), /is the principal running, and is key `py-stranger` enrolled there/);
    assert.ok(Number(out.seconds) < 5, `took ${String(out.seconds)} s with a 0.5 s timeout`);
    assert.equal(out.identity, null, "no hello succeeded");

    const cancel = out.cancel as Record<string, unknown>;
    assert.equal(cancel.success, false);
    assert.equal(cancel.code, "PERMISSION_DENIED");
    assert.equal(cancel.retryable, false);
    assert.match(String(cancel.error), /^PERMISSION_DENIED: .*py-trigger.*cancelRun/);
    assert.deepEqual(out.agents, { success: false, code: "PERMISSION_DENIED" });
    const raised = out.raised as Record<string, unknown>;
    assert.equal(raised.type, "CdktrError");
    assert.equal(raised.code, "PERMISSION_DENIED");
    assert.equal(raised.retryable, false);
    assert.match(String(raised.message), /listAgents/);
    // the refused cancel did nothing: the run goes on to complete
    const { run } = await f.waitForRun(String(out.run));
    assert.equal(run.status, "COMPLETED");
    assert.equal(run.triggeredBy, "py-trigger");
  });

  test("a key file readable by others is refused with `chmod 600 <path>`, a missing or malformed key names the problem, CDKTR_AUTH=off means no key", async () => {
    const made = await f.createKey("py-unsafe", "trigger", { enroll: false });
    const unsafe = join(makeTempDir("cdktr-py-key-"), "unsafe.json");
    copyFileSync(made.path, unsafe);
    chmodSync(unsafe, 0o644);
    const missing = join(makeTempDir("cdktr-py-key-"), "none.json");
    const out = await python(BAD_KEYS_SCRIPT, [unsafe, missing], { HOME: f.home });
    for (const where of ["argument", "subscriber", "env", "listener"]) {
      const e = out[where] as Record<string, unknown> | null;
      assert.ok(e !== null, `${where}: refused`);
      assert.equal(e.code, "KEY_FILE_UNSAFE", where);
      assert.equal(e.retryable, false);
      assert.equal(e.message, `key file ${unsafe} may be read by other users (mode 644): run \`chmod 600 ${unsafe}\``);
    }
    assert.deepEqual(out.missing, {
      code: "KEY_FILE_MISSING",
      message: `key file ${missing} does not exist: create one with \`cdktr keys create\` or fix CDKTR_KEY_FILE`,
      retryable: false,
    });
    const bad = out.badDict as Record<string, unknown>;
    assert.equal(bad.code, "KEY_FILE_INVALID");
    assert.match(String(bad.message), /publicKey: expected a 40-character Z85 key/);
    assert.equal(out.authOff, true, "CDKTR_AUTH=off: plaintext even with local keys in HOME");
  });

  test("an EventListener with no principal and no key triggers with the local-listeners key", async () => {
    const out = await python(LOCAL_LISTENER_SCRIPT, [], { ...f.clientEnv });
    assert.equal(out.error, null);
    const identity = out.identity as Record<string, unknown>;
    assert.equal(identity.name, "local-listeners");
    assert.equal(identity.role, "trigger");
    const { run } = await f.client.getRun(String(out.run_id));
    assert.equal(run.triggeredBy, "local-listeners");
    assert.equal(run.source, "Files");
  });

  test("after the principal restarts, the same Principal proves its key again (once) and its call succeeds", async () => {
    const p = await startPrincipal({});
    const dir = makeTempDir("cdktr-py-restart-");
    const marker = join(dir, "proven");
    const go = join(dir, "go");
    const done = python(RESTART_SCRIPT, [marker, go], { ...p.clientEnv });
    await waitFor(() => existsSync(marker), { timeoutMs: 30_000, what: "the first call" });
    await p.stop();
    await p.start();
    writeFileSync(go, "");
    const out = await done;
    assert.equal(out.first, true);
    assert.equal(out.second, true, String(out.error));
    assert.equal(out.hellos, 2, "hello before the first call, again after UNAUTHENTICATED");
    assert.equal(out.identity, "local-operator");
  });
});
