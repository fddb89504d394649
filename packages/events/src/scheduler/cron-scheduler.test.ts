/**
 * CronScheduler on fake time: a ManualClock and an in-memory principal (keeps idempotency keys
 * like the real one), so DST, catch-up, retries and restarts are tested without sleeping.
 * The real-process tests are in e2e/src/scheduler/scheduler-processes.test.ts.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  CdktrError,
  ManualClock,
  type ApiVerbs,
  type ReplyOf,
  type RequestOf,
  type WorkflowDefinition,
} from "@cdktr/protocol";
import { runRecord, workflowDefinition } from "@cdktr/test-utils";
import { CronScheduler, occurrenceKey, type CronSchedulerOptions } from "./cron-scheduler.js";
import type { PrincipalRequester } from "../listener/event-listener.js";

type Req<V extends keyof ApiVerbs> = RequestOf<ApiVerbs, V>;

interface Trigger {
  workflowId: string;
  key: string;
  scheduledFor: string | undefined;
  source: string | undefined;
  sentAt: number;
  created: boolean;
}

function wf(id: string, schedule: string | null, extra: Partial<WorkflowDefinition> = {}): WorkflowDefinition {
  return workflowDefinition({
    id,
    cron: schedule,
    schedule,
    catchUp: { policy: "skip", max: 10 },
    hash: `${id}:${schedule}:${extra.timezone ?? "UTC"}:${JSON.stringify(extra)}`,
    ...extra,
  });
}

/** An in-memory principal: workflows with a version, runs keyed by idempotency key. */
class FakePrincipal implements PrincipalRequester {
  readonly endpoint = "tcp://127.0.0.1:1";
  version = 1;
  workflows = new Map<string, WorkflowDefinition>();
  removedAt = new Map<string, number>();
  changedAt = new Map<string, number>();
  runs = new Map<string, { runId: string; workflowId: string; scheduledFor: string | null }>();
  triggers: Trigger[] = [];
  /** Return an error for a runWorkflow call, or undefined to serve it. */
  failRun: (req: Req<"runWorkflow">) => CdktrError | undefined = () => undefined;
  /** Delay (a promise) before answering runWorkflow. */
  holdRun: (req: Req<"runWorkflow">) => Promise<void> | undefined = () => undefined;
  down = false;
  listCalls: Req<"listWorkflows">[] = [];
  /** Serve `runWorkflows` (false: refuse it with UNKNOWN_VERB, as a principal older than the verb). */
  batch = false;
  /** The size of every `runWorkflows` request served. */
  batches: number[] = [];

  constructor(readonly clock: ManualClock) {}

  put(def: WorkflowDefinition): void {
    this.version++;
    this.workflows.set(def.id, def);
    this.changedAt.set(def.id, this.version);
    this.removedAt.delete(def.id);
  }

  remove(id: string): void {
    this.version++;
    this.workflows.delete(id);
    this.removedAt.set(id, this.version);
  }

  created(workflowId?: string): Trigger[] {
    return this.triggers.filter((t) => t.created && (workflowId === undefined || t.workflowId === workflowId));
  }

  async request<V extends keyof ApiVerbs & string>(
    verb: V,
    body: RequestOf<ApiVerbs, V>,
  ): Promise<ReplyOf<ApiVerbs, V>> {
    if (this.down) throw new CdktrError("TIMEOUT", "no reply from the principal");
    const reply = await this.#serve(verb, body as never);
    return reply as ReplyOf<ApiVerbs, V>;
  }

  async #serve(verb: string, body: never): Promise<unknown> {
    switch (verb) {
      case "listWorkflows": {
        const req = body as Req<"listWorkflows">;
        this.listCalls.push(req);
        const since = req.sinceVersion;
        if (since === undefined) {
          return {
            version: this.version,
            full: true,
            workflows: [...this.workflows.values()],
            removed: [],
            errors: [],
          };
        }
        return {
          version: this.version,
          full: false,
          workflows: [...this.workflows.values()].filter((w) => (this.changedAt.get(w.id) ?? 0) > since),
          removed: [...this.removedAt].filter(([, v]) => v > since).map(([id]) => id),
          errors: [],
        };
      }
      case "listRuns": {
        const req = body as Req<"listRuns">;
        const runs = [...this.runs.values()]
          .filter((r) => r.workflowId === req.workflowId && r.scheduledFor !== null)
          .sort((a, b) => (b.scheduledFor ?? "").localeCompare(a.scheduledFor ?? ""))
          .slice(0, req.limit ?? 100)
          .map((r) => runRecord({ ...r, source: "scheduler" }));
        return { runs, nextCursor: null };
      }
      case "runWorkflow": {
        const req = body as Req<"runWorkflow">;
        const hold = this.holdRun(req);
        if (hold !== undefined) await hold;
        const err = this.failRun(req);
        if (err !== undefined) throw err;
        if (!this.workflows.has(req.workflowId))
          throw new CdktrError("WORKFLOW_NOT_FOUND", `no workflow ${req.workflowId}`);
        const key = req.idempotencyKey ?? "";
        const existing = this.runs.get(key);
        this.triggers.push({
          workflowId: req.workflowId,
          key,
          scheduledFor: req.scheduledFor,
          source: req.source,
          sentAt: this.clock.now(),
          created: existing === undefined,
        });
        if (existing !== undefined) return { runId: existing.runId, duplicate: true, skipped: false, status: "QUEUED" };
        const run = {
          runId: `run-${this.runs.size + 1}`,
          workflowId: req.workflowId,
          scheduledFor: req.scheduledFor ?? null,
        };
        this.runs.set(key, run);
        return { runId: run.runId, duplicate: false, skipped: false, status: "QUEUED" };
      }
      case "runWorkflows": {
        if (!this.batch) throw new CdktrError("UNKNOWN_VERB", verb);
        const { items } = body as Req<"runWorkflows">;
        this.batches.push(items.length);
        const results = [];
        for (const item of items) {
          try {
            results.push({ ok: true, ...((await this.#serve("runWorkflow", item as never)) as object) });
          } catch (e) {
            results.push({ ok: false, error: (e as CdktrError).toWire() });
          }
        }
        return { results };
      }
      default:
        throw new CdktrError("UNKNOWN_VERB", verb);
    }
  }

  close(): void {}
}

const T0 = Date.parse("2026-11-28T10:00:00.000Z");

async function setup(
  opts: Partial<CronSchedulerOptions> & { start?: number; principal?: FakePrincipal; clock?: ManualClock } = {},
) {
  const clock = opts.clock ?? new ManualClock(opts.start ?? T0);
  const principal = opts.principal ?? new FakePrincipal(clock);
  const { start: _s, principal: _p, clock: _c, ...rest } = opts;
  const scheduler = new CronScheduler({ principal, clock, subscribe: false, ...rest });
  return { clock, principal, scheduler };
}

const isoSec = (t: number): string => new Date(t).toISOString();
const seconds = (from: number, n: number): string[] => Array.from({ length: n }, (_, i) => isoSec(from + i * 1000));

describe("CronScheduler (fake time)", () => {
  it("triggers every occurrence on time with scheduledFor, key and source", async () => {
    const { clock, principal, scheduler } = await setup();
    principal.put(wf("every-sec", "* * * * * *"));
    principal.put(wf("every-5", "*/5 * * * * *"));
    await scheduler.start();
    await clock.advance(10_000);
    const every = principal.created("every-sec");
    assert.deepEqual(
      every.map((t) => t.scheduledFor),
      seconds(T0 + 1000, 10),
    );
    assert.deepEqual(
      every.map((t) => t.sentAt - Date.parse(t.scheduledFor ?? "")),
      Array(10).fill(0),
      "sent exactly at the occurrence",
    );
    assert.deepEqual(
      every.map((t) => t.key),
      every.map((t) => occurrenceKey("every-sec", Date.parse(t.scheduledFor ?? ""))),
    );
    assert.ok(every.every((t) => t.source === "scheduler"));
    assert.deepEqual(
      principal.created("every-5").map((t) => t.scheduledFor),
      [isoSec(T0 + 5000), isoSec(T0 + 10_000)],
    );
    assert.equal(principal.triggers.length, 12, "no duplicate sends");
    assert.equal(scheduler.stats.triggered, 12);
    await scheduler.stop();
  });

  it("sleeps until the next occurrence instead of polling, and clamps long sleeps", async () => {
    const { clock, principal, scheduler } = await setup({ maxSleepMs: 60_000 });
    principal.put(wf("yearly", "0 0 0 1 1 *"));
    await scheduler.start();
    await clock.settle();
    // one scheduling timer and one refresh timer: no 500 ms polling
    assert.equal(clock.pendingTimers, 2);
    await clock.advanceTo(Date.parse("2026-12-31T23:59:59.000Z"));
    assert.equal(principal.triggers.length, 0);
    await clock.advanceTo(Date.parse("2027-01-01T00:00:00.000Z"));
    assert.deepEqual(
      principal.created().map((t) => t.scheduledFor),
      ["2027-01-01T00:00:00.000Z"],
    );
    await scheduler.stop();
    assert.equal(clock.pendingTimers, 0, "stop clears every timer");
  });

  it("a slow trigger does not delay another workflow's occurrence", async () => {
    const { clock, principal, scheduler } = await setup();
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => (release = r));
    principal.holdRun = (req) => (req.workflowId === "slow" ? held : undefined);
    principal.put(wf("slow", "* * * * * *"));
    principal.put(wf("fast", "* * * * * *"));
    await scheduler.start();
    await clock.advance(3000);
    assert.deepEqual(
      principal.created("fast").map((t) => t.scheduledFor),
      seconds(T0 + 1000, 3),
    );
    assert.equal(principal.created("slow").length, 0);
    release();
    await clock.settle();
    assert.deepEqual(
      principal
        .created("slow")
        .map((t) => t.scheduledFor)
        .sort(),
      seconds(T0 + 1000, 3),
    );
    await scheduler.stop();
  });

  it("applies the workflow's timezone across a DST change (Europe/London fall-back)", async () => {
    const start = Date.parse("2026-10-24T23:00:00.000Z");
    const { clock, principal, scheduler } = await setup({ start });
    principal.put(wf("fixed", "0 30 1 * * *", { timezone: "Europe/London" }));
    principal.put(wf("hourly", "0 30 * * * *", { timezone: "Europe/London" }));
    await scheduler.start();
    await clock.advanceTo(Date.parse("2026-10-25T03:00:00.000Z"));
    assert.deepEqual(
      principal.created("fixed").map((t) => t.scheduledFor),
      ["2026-10-25T00:30:00.000Z"],
    );
    assert.deepEqual(
      principal.created("hourly").map((t) => t.scheduledFor),
      ["2026-10-24T23:30:00.000Z", "2026-10-25T00:30:00.000Z", "2026-10-25T01:30:00.000Z", "2026-10-25T02:30:00.000Z"],
    );
    await scheduler.stop();
  });

  it("respects startTime", async () => {
    const { clock, principal, scheduler } = await setup();
    principal.put(wf("later", "* * * * * *", { startTime: isoSec(T0 + 5000) }));
    await scheduler.start();
    await clock.advance(7000);
    assert.deepEqual(
      principal.created().map((t) => t.scheduledFor),
      seconds(T0 + 5000, 3),
    );
    await scheduler.stop();
  });

  it("fires hundreds of workflows due at the same instant, each exactly once and on time", async () => {
    const { clock, principal, scheduler } = await setup();
    for (let i = 0; i < 300; i++) principal.put(wf(`s${i}`, "* * * * * *"));
    for (let i = 0; i < 50; i++) principal.put(wf(`e${i}`, "*/2 * * * * *"));
    principal.put(wf("ny", "0 0 5 * * *", { timezone: "America/New_York" })); // 10:00 UTC
    await scheduler.start();
    await clock.advance(5000);
    for (let i = 0; i < 300; i++)
      assert.deepEqual(
        principal.created(`s${i}`).map((t) => t.scheduledFor),
        seconds(T0 + 1000, 5),
        `s${i}`,
      );
    for (let i = 0; i < 50; i++)
      assert.deepEqual(
        principal.created(`e${i}`).map((t) => t.scheduledFor),
        [isoSec(T0 + 2000), isoSec(T0 + 4000)],
        `e${i}`,
      );
    assert.equal(principal.triggers.length, 300 * 5 + 50 * 2, "no duplicate sends");
    assert.ok(
      principal.triggers.every((t) => t.sentAt === Date.parse(t.scheduledFor ?? "")),
      "every trigger sent at its instant",
    );
    assert.deepEqual(scheduler.scheduled().find((e) => e.workflowId === "ny")?.next, "2026-11-29T10:00:00.000Z");
    assert.ok(
      scheduler
        .scheduled()
        .filter((e) => e.workflowId.startsWith("s"))
        .every((e) => e.next === isoSec(T0 + 6000)),
    );
    await scheduler.stop();
  });

  it("occurrences due at the same instant go in one runWorkflows request; a failed item is retried alone", async () => {
    const clock = new ManualClock(T0);
    const principal = new FakePrincipal(clock);
    principal.batch = true;
    for (let i = 0; i < 40; i++) principal.put(wf(`s${i}`, "* * * * * *"));
    let failures = 1;
    principal.failRun = (req) =>
      req.workflowId === "s7" && failures-- > 0 ? new CdktrError("UNAVAILABLE", "try later") : undefined;
    const { scheduler } = await setup({ clock, principal, retryInitialDelayMs: 100 });
    await scheduler.start();
    await clock.advance(3000);
    for (let i = 0; i < 40; i++) {
      assert.deepEqual(
        principal.created(`s${i}`).map((t) => t.scheduledFor),
        seconds(T0 + 1000, 3),
        `s${i}`,
      );
    }
    // One request per instant with all 40; the retry of s7's first occurrence went alone (runWorkflow).
    assert.deepEqual(principal.batches, [40, 40, 40]);
    assert.equal(scheduler.stats.retries, 1);
    await scheduler.stop();
  });

  it("waking early (earlyWakeMs) never sends before the occurrence", async () => {
    const { clock, principal, scheduler } = await setup({ earlyWakeMs: 5 });
    principal.put(wf("every-sec", "* * * * * *"));
    await scheduler.start();
    await clock.advance(999);
    assert.equal(principal.triggers.length, 0, "nothing sent during the early window");
    await clock.advance(1);
    await clock.advance(2000);
    const sent = principal.created("every-sec");
    assert.deepEqual(
      sent.map((t) => t.scheduledFor),
      seconds(T0 + 1000, 3),
    );
    assert.deepEqual(
      sent.map((t) => t.sentAt - Date.parse(t.scheduledFor ?? "")),
      [0, 0, 0],
    );
    await scheduler.stop();
  });

  it("adds jitter to the send time, not to scheduledFor", async () => {
    const { clock, principal, scheduler } = await setup({ random: () => 0.5 });
    principal.put(wf("jittery", "0 * * * * *", { jitterMs: 10_000 }));
    await scheduler.start();
    await clock.advance(60_000 + 4_999);
    assert.equal(principal.triggers.length, 0);
    await clock.advance(1);
    assert.deepEqual(
      principal.created().map((t) => [t.scheduledFor, t.sentAt - T0]),
      [[isoSec(T0 + 60_000), 65_000]],
    );
    await scheduler.stop();
  });
});

describe("CronScheduler catch-up after downtime", () => {
  // Principal recorded the 09:00 occurrence of an every-10-minutes workflow; the scheduler
  // comes back at 10:00:30, so 09:10 ... 10:00 were missed (10:00 is inside the 60 s grace).
  async function downtime(policy: "skip" | "once" | "all", max: number, record = true) {
    const clock = new ManualClock(T0 + 30_000);
    const principal = new FakePrincipal(clock);
    principal.put(wf("ten", "0 */10 * * * *", { catchUp: { policy, max } }));
    if (record)
      principal.runs.set("old", { runId: "run-old", workflowId: "ten", scheduledFor: "2026-11-28T09:00:00.000Z" });
    const { scheduler } = await setup({ clock, principal });
    const missed: string[] = [];
    scheduler.on("missed", (m) => missed.push(m.reason));
    await scheduler.start();
    await clock.advance(1000);
    const got = principal.created("ten").map((t) => t.scheduledFor);
    await scheduler.stop();
    return { got, missed };
  }

  it("skip (default): nothing older than the grace window; the late 10:00 still fires", async () => {
    const { got, missed } = await downtime("skip", 10);
    assert.deepEqual(got, ["2026-11-28T10:00:00.000Z"]);
    assert.equal(missed.length, 1);
    assert.match(missed[0] ?? "", /09:10:00.000Z/);
  });

  it("once: the latest missed occurrence, then the late one", async () => {
    const { got } = await downtime("once", 10);
    assert.deepEqual(got, ["2026-11-28T09:50:00.000Z", "2026-11-28T10:00:00.000Z"]);
  });

  it("all: every missed occurrence up to the cap (the most recent ones)", async () => {
    assert.deepEqual((await downtime("all", 3)).got, [
      "2026-11-28T09:30:00.000Z",
      "2026-11-28T09:40:00.000Z",
      "2026-11-28T09:50:00.000Z",
      "2026-11-28T10:00:00.000Z",
    ]);
    const { got, missed } = await downtime("all", 100);
    assert.deepEqual(
      got,
      ["09:10", "09:20", "09:30", "09:40", "09:50", "10:00"].map((hm) => `2026-11-28T${hm}:00.000Z`),
    );
    assert.equal(missed.length, 0);
  });

  it("a workflow never triggered before catches up nothing", async () => {
    const { got, missed } = await downtime("all", 100, false);
    assert.deepEqual(got, []);
    assert.equal(missed.length, 0);
  });
});

describe("CronScheduler failures", () => {
  it("retries a failing trigger with backoff, with the same key, until it succeeds", async () => {
    // Retry delays have equal jitter drawn from `random`: near 1 picks the top of each range.
    const { clock, principal, scheduler } = await setup({ retryInitialDelayMs: 500, random: () => 0.999_999 });
    let failures = 3;
    principal.failRun = () => (failures-- > 0 ? new CdktrError("TIMEOUT", "no reply") : undefined);
    principal.put(wf("flaky", "0 * * * * *"));
    await scheduler.start();
    await clock.advance(60_000);
    assert.equal(principal.triggers.length, 0);
    await clock.advance(500 + 1000 + 1999);
    assert.equal(principal.triggers.length, 0, "backoff 500, 1000, 2000 ms");
    await clock.advance(1);
    assert.deepEqual(
      principal.created().map((t) => [t.scheduledFor, t.sentAt - T0]),
      [[isoSec(T0 + 60_000), 63_500]],
    );
    assert.equal(scheduler.stats.retries, 3);
    await scheduler.stop();
  });

  it("retry delays are jittered down to half their size through the injected random source", async () => {
    const { clock, principal, scheduler } = await setup({ retryInitialDelayMs: 500, random: () => 0 });
    let failures = 3;
    principal.failRun = () => (failures-- > 0 ? new CdktrError("TIMEOUT", "no reply") : undefined);
    principal.put(wf("flaky", "0 * * * * *"));
    await scheduler.start();
    await clock.advance(60_000 + 250 + 500 + 999);
    assert.equal(principal.created().length, 0, "backoff 250, 500, 1000 ms");
    await clock.advance(1);
    assert.deepEqual(
      principal.created().map((t) => [t.key, t.sentAt - T0]),
      [[occurrenceKey("flaky", T0 + 60_000), 61_750]],
    );
    assert.equal(scheduler.stats.retries, 3);
    await scheduler.stop();
  });

  it("a trigger failing past the grace window is counted missed, and the loop goes on", async () => {
    const { clock, principal, scheduler } = await setup({
      missGraceMs: 10_000,
      retryInitialDelayMs: 1000,
      retryMaxDelayMs: 4000,
    });
    let broken = true;
    principal.failRun = () => (broken ? new CdktrError("UNAVAILABLE", "principal unreachable") : undefined);
    principal.put(wf("minutely", "0 * * * * *"));
    const missed: string[] = [];
    scheduler.on("missed", (m) => missed.push(m.scheduledFor));
    await scheduler.start();
    await clock.advance(60_000 + 30_000);
    assert.deepEqual(missed, [isoSec(T0 + 60_000)]);
    assert.equal(scheduler.stats.missed, 1);
    broken = false;
    await clock.advance(30_000);
    assert.deepEqual(
      principal.created().map((t) => t.scheduledFor),
      [isoSec(T0 + 120_000)],
    );
    await scheduler.stop();
  });

  it("a non-retryable refusal is dropped without retries", async () => {
    const { clock, principal, scheduler } = await setup();
    principal.failRun = () => new CdktrError("INVALID_PARAMS", "param x is required");
    principal.put(wf("strict", "0 * * * * *"));
    await scheduler.start();
    await clock.advance(61_000);
    assert.equal(scheduler.stats.refused, 1);
    assert.equal(scheduler.stats.retries, 0);
    await scheduler.stop();
  });

  it("one bad cron leaves the other schedules firing", async () => {
    const { clock, principal, scheduler } = await setup();
    principal.put(wf("bad", "0 99 * * * *"));
    principal.put(wf("good", "* * * * * *"));
    const errors: string[] = [];
    scheduler.on("error", (e) => errors.push(e.message));
    await scheduler.start();
    await clock.advance(3000);
    assert.deepEqual(
      principal.created("good").map((t) => t.scheduledFor),
      seconds(T0 + 1000, 3),
    );
    assert.equal(errors.length, 1);
    assert.match(errors[0] ?? "", /workflow bad: invalid cron/);
    await scheduler.stop();
  });

  it("starts while the principal is down and keeps retrying the initial load", async () => {
    const { clock, principal, scheduler } = await setup();
    principal.down = true;
    principal.put(wf("w", "* * * * * *"));
    await scheduler.start();
    await clock.advance(20_000);
    assert.equal(scheduler.loaded, false);
    principal.down = false;
    await clock.advance(11_000);
    assert.equal(scheduler.loaded, true);
    assert.ok(principal.created().length >= 1);
    await scheduler.stop();
  });
});

describe("CronScheduler exactly once", () => {
  it("a restarted scheduler re-sends nothing already triggered (same keys)", async () => {
    const clock = new ManualClock(T0);
    const principal = new FakePrincipal(clock);
    principal.put(wf("w", "* * * * * *"));
    const a = (await setup({ clock, principal })).scheduler;
    await a.start();
    await clock.advance(5000);
    await a.stop();
    await clock.advance(2500); // down for 2.5 s: 6 and 7 are late, not missed
    const b = (await setup({ clock, principal })).scheduler;
    await b.start();
    await clock.advance(3000);
    await b.stop();
    const created = principal
      .created("w")
      .map((t) => t.scheduledFor)
      .sort();
    assert.deepEqual(created, seconds(T0 + 1000, 10));
    assert.equal(principal.triggers.length, created.length, "the restart re-sent nothing");
  });

  it("two schedulers side by side create each occurrence once", async () => {
    const clock = new ManualClock(T0);
    const principal = new FakePrincipal(clock);
    principal.put(wf("w", "* * * * * *"));
    const a = (await setup({ clock, principal })).scheduler;
    const b = (await setup({ clock, principal })).scheduler;
    await a.start();
    await b.start();
    await clock.advance(5000);
    await a.stop();
    await b.stop();
    assert.deepEqual(
      principal
        .created()
        .map((t) => t.scheduledFor)
        .sort(),
      seconds(T0 + 1000, 5),
    );
    assert.equal(principal.triggers.length, 10);
    assert.equal(principal.triggers.filter((t) => !t.created).length, 5);
    assert.equal(a.stats.duplicates + b.stats.duplicates, 5);
  });
});

describe("CronScheduler refresh", () => {
  it("picks up new, edited and removed workflows on refresh (since-version)", async () => {
    const { clock, principal, scheduler } = await setup({ refreshIntervalMs: 3_600_000 });
    await scheduler.start();
    await clock.advance(5000);
    assert.equal(principal.triggers.length, 0, "idles with no cron workflow");
    principal.put(wf("w", "*/2 * * * * *"));
    await scheduler.refresh();
    await clock.advance(4000);
    assert.deepEqual(
      principal.created("w").map((t) => t.scheduledFor),
      [isoSec(T0 + 6000), isoSec(T0 + 8000)],
    );
    principal.put(wf("w", "*/3 * * * * *"));
    await scheduler.refresh();
    await clock.advance(6000);
    assert.deepEqual(
      principal
        .created("w")
        .map((t) => t.scheduledFor)
        .slice(2),
      [isoSec(T0 + 12_000), isoSec(T0 + 15_000)],
    );
    principal.remove("w");
    await scheduler.refresh();
    await clock.advance(6000);
    assert.equal(principal.created("w").length, 4);
    assert.deepEqual(
      principal.listCalls.slice(1).map((r) => r.sinceVersion !== undefined),
      [true, true, true],
    );
    await scheduler.stop();
  });

  it("an edit that keeps the schedule keeps the queued occurrence", async () => {
    const { clock, principal, scheduler } = await setup({ refreshIntervalMs: 3_600_000, random: () => 0 });
    principal.put(wf("w", "0 * * * * *"));
    await scheduler.start();
    await clock.advance(1000);
    const before = scheduler.scheduled();
    principal.put(wf("w", "0 * * * * *", { description: "edited", hash: "edited" }));
    await scheduler.refresh();
    assert.deepEqual(scheduler.scheduled(), before);
    await clock.advance(59_000);
    assert.deepEqual(
      principal.created().map((t) => t.scheduledFor),
      [isoSec(T0 + 60_000)],
    );
    await scheduler.stop();
  });

  it("reloads everything when the principal's version goes backwards (a new store)", async () => {
    const { clock, principal, scheduler } = await setup({ refreshIntervalMs: 3_600_000 });
    principal.put(wf("old", "* * * * * *"));
    principal.version = 50;
    await scheduler.start();
    await clock.advance(1000);
    assert.equal(principal.created("old").length, 1);
    // a fresh principal: version 2, only "new"
    principal.workflows.clear();
    principal.changedAt.clear();
    principal.version = 1;
    principal.put(wf("new", "* * * * * *"));
    await scheduler.refresh();
    assert.deepEqual(
      scheduler.scheduled().map((e) => e.workflowId),
      ["new"],
    );
    await clock.advance(2000);
    assert.equal(principal.created("new").length, 2);
    assert.equal(scheduler.stats.version, 2);
    await scheduler.stop();
  });

  it("the periodic refresh picks up the first cron workflow deployed later", async () => {
    const { clock, principal, scheduler } = await setup({ refreshIntervalMs: 60_000 });
    await scheduler.start();
    await clock.advance(30_000);
    principal.put(wf("late", "* * * * * *"));
    await clock.advance(30_000);
    await clock.advance(2000);
    assert.deepEqual(
      principal.created("late").map((t) => t.scheduledFor),
      seconds(T0 + 61_000, 2),
    );
    await scheduler.stop();
  });
});
