import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { API_VERBS, KEY_ROLES, LOG_VERBS, type KeyIdentity, type KeyRole } from "@cdktr/protocol";
import {
  ALL_VERBS,
  mayActFor,
  mayReadRun,
  mayTriggerWorkflow,
  mayUseIdempotencyKey,
  permitsTopic,
  permitsVerb,
  runOfTopic,
  seesAllRuns,
  triggeredByOf,
  type RunRead,
} from "./roles.js";

const id = (role: KeyRole, name: string = role, workflows: string[] | null = null): KeyIdentity => ({
  name,
  role,
  scope: name,
  workflows,
  publicKey: "x".repeat(40),
});

/** The verb x role table of docs/security.md: verb -> role -> cell text. */
function documentedMatrix(): Map<string, Map<string, string>> {
  const doc = readFileSync(new URL("../../../../docs/security.md", import.meta.url), "utf8");
  const lines = doc.split("\n");
  const head = lines.findIndex((l) => l.startsWith("| verb |"));
  assert.ok(head >= 0, "docs/security.md has the verb table");
  const roles = (lines[head] ?? "")
    .split("|")
    .map((c) => c.trim())
    .slice(2, -1);
  const out = new Map<string, Map<string, string>>();
  for (const line of lines.slice(head + 2)) {
    if (!line.startsWith("|")) break;
    const cells = line
      .split("|")
      .map((c) => c.trim())
      .slice(1, -1);
    const verb = (cells[0] ?? "").replace(/`/g, "");
    out.set(verb, new Map(roles.map((r, i) => [r, cells[i + 1] ?? ""])));
  }
  return out;
}

describe("the role matrix", () => {
  it("covers every verb of both channels, and docs/security.md shows exactly what roles.ts enforces", () => {
    const verbs = new Set([...Object.keys(API_VERBS), ...Object.keys(LOG_VERBS)]);
    assert.deepEqual(new Set(ALL_VERBS), verbs);
    const doc = documentedMatrix();
    assert.deepEqual(new Set(doc.keys()), verbs, "one row per verb");
    const scoped: readonly string[] = ["getRun", "listRuns", "queryLogs"];
    for (const verb of verbs) {
      for (const role of KEY_ROLES) {
        const identity = id(role);
        const expected = !permitsVerb(identity, verb)
          ? "no"
          : scoped.includes(verb) && !seesAllRuns(identity, verb as RunRead)
            ? "own runs"
            : "yes";
        assert.equal(doc.get(verb)?.get(role), expected, `${verb} / ${role}`);
      }
    }
  });

  it("authentication off allows everything", () => {
    for (const verb of ALL_VERBS) assert.equal(permitsVerb(null, verb), true);
    assert.equal(seesAllRuns(null, "getRun"), true);
    assert.equal(mayUseIdempotencyKey(null, "cron:x:2026-01-01T00:00:00.000Z"), true);
    assert.equal(mayTriggerWorkflow(null, "any"), true);
    assert.equal(permitsVerb(id("trigger"), "dropTables"), false, "an unknown verb is nobody's");
  });

  it("only a dashboard key acts for a person; the run records the key and the person", () => {
    for (const role of KEY_ROLES) assert.equal(mayActFor(id(role)), role === "dashboard", role);
    assert.equal(triggeredByOf(id("dashboard", "web"), "alice"), "web:alice");
    assert.equal(triggeredByOf(id("dashboard", "web"), undefined), "web");
    assert.equal(triggeredByOf(id("trigger", "ci"), undefined), "ci");
    assert.equal(triggeredByOf(null, undefined), null);
    assert.equal(triggeredByOf(null, "alice"), "alice", "authentication off: the actor as given");
  });

  it("a trigger or scheduler reads one run only when it triggered it; readers and operators read any", () => {
    assert.equal(mayReadRun(id("trigger", "t"), "getRun", "t"), true);
    assert.equal(mayReadRun(id("trigger", "t"), "getRun", "other"), false);
    assert.equal(mayReadRun(id("trigger", "t"), "getRun", null), false);
    assert.equal(mayReadRun(id("scheduler", "s"), "getRun", "other"), false);
    assert.equal(mayReadRun(id("scheduler", "s"), "listRuns", "other"), true, "catch-up lists every run");
    assert.equal(mayReadRun(id("reader"), "queryLogs", "other"), true);
    assert.equal(mayReadRun(id("operator"), "getRun", null), true);
  });

  it("cron: idempotency keys are the scheduler's and an operator's; allow-lists limit what a key triggers", () => {
    const cron = "cron:etl:2026-01-01T00:00:00.000Z";
    assert.equal(mayUseIdempotencyKey(id("scheduler"), cron), true);
    assert.equal(mayUseIdempotencyKey(id("operator"), cron), true);
    assert.equal(mayUseIdempotencyKey(id("trigger"), cron), false);
    assert.equal(mayUseIdempotencyKey(id("trigger"), "webhook:cron:1"), true, "only the prefix is reserved");
    assert.equal(mayTriggerWorkflow(id("trigger", "t", ["a", "b"]), "a"), true);
    assert.equal(mayTriggerWorkflow(id("trigger", "t", ["a", "b"]), "c"), false);
    assert.equal(mayTriggerWorkflow(id("trigger", "t", []), "a"), false);
    assert.equal(mayTriggerWorkflow(id("trigger"), "c"), true);
  });

  it("topics: one run's exact topics, never a broader prefix", () => {
    assert.deepEqual(runOfTopic("runs|wf|r1|"), { workflowId: "wf", runId: "r1" });
    assert.deepEqual(runOfTopic("tasks|wf|r1|"), { workflowId: "wf", runId: "r1" });
    assert.deepEqual(runOfTopic("logs|wf|r1|"), { workflowId: "wf", runId: "r1" });
    assert.deepEqual(runOfTopic("logs|wf|r1|task|"), { workflowId: "wf", runId: "r1" });
    for (const broad of [
      "",
      "runs|",
      "runs|wf|",
      "runs|wf|r1",
      "logs|wf|r1|t|x|",
      "runs||r1|",
      "tasks|wf|r1|x|",
      "x|wf|r1|",
    ])
      assert.equal(runOfTopic(broad), null, JSON.stringify(broad));
  });

  it("a trigger key may receive workflows| and the topics of its own runs; agents nothing; readers everything", async () => {
    const runs = new Map([
      ["mine", { workflowId: "wf", triggeredBy: "t" }],
      ["theirs", { workflowId: "wf", triggeredBy: "u" }],
    ]);
    const runOf = async (workflowId: string, runId: string) => {
      const r = runs.get(runId);
      return r !== undefined && r.workflowId === workflowId ? { triggeredBy: r.triggeredBy } : undefined;
    };
    const t = id("trigger", "t");
    assert.equal(await permitsTopic(t, "workflows|", runOf), true);
    assert.equal(await permitsTopic(t, "runs|wf|mine|", runOf), true);
    assert.equal(await permitsTopic(t, "logs|wf|mine|task|", runOf), true);
    assert.equal(await permitsTopic(t, "runs|wf|theirs|", runOf), false);
    assert.equal(await permitsTopic(t, "runs|other|mine|", runOf), false, "the run's own workflow only");
    assert.equal(await permitsTopic(t, "runs|wf|", runOf), false);
    assert.equal(await permitsTopic(t, "", runOf), false);
    assert.equal(await permitsTopic(id("scheduler", "t"), "runs|wf|mine|", runOf), true);
    // A scheduler follows every run's outcome (chaining): run state changes, not tasks or logs.
    const s = id("scheduler", "s");
    assert.equal(await permitsTopic(s, "runs|", runOf), true);
    assert.equal(await permitsTopic(s, "runs|wf|", runOf), true);
    assert.equal(await permitsTopic(s, "runs|wf|theirs|", runOf), false, "one run's topic: only its own runs");
    assert.equal(await permitsTopic(s, "runs", runOf), false);
    assert.equal(await permitsTopic(s, "runs||", runOf), false);
    assert.equal(await permitsTopic(s, "tasks|", runOf), false);
    assert.equal(await permitsTopic(s, "logs|wf|", runOf), false);
    assert.equal(await permitsTopic(id("agent"), "workflows|", runOf), false);
    assert.equal(await permitsTopic(id("reader"), "", runOf), true);
    assert.equal(await permitsTopic(id("operator"), "logs|", runOf), true);
  });
});
