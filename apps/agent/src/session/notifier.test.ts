import { test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "@cdktr/protocol";
import { Notifier } from "./notifier.js";

test("wait() resolves at its timeout, or at once on notify()", async () => {
  const clock = new ManualClock();
  const wake = new Notifier(clock);
  let timedOut = false;
  void wake.wait(1000).then(() => (timedOut = true));
  await clock.advance(999);
  assert.equal(timedOut, false);
  await clock.advance(1);
  assert.equal(timedOut, true);

  let woken = false;
  void wake.wait(60_000).then(() => (woken = true));
  await clock.settle();
  assert.equal(woken, false);
  wake.notify();
  await clock.settle();
  assert.equal(woken, true);
  assert.equal(clock.pendingTimers, 0, "a notified wait leaves no timer behind");
});

test("until() is true once the predicate holds after a notify, false when it never does", async () => {
  const clock = new ManualClock();
  const wake = new Notifier(clock);
  let done = false;
  let result: boolean | null = null;
  void wake.until(() => done, 10_000).then((r) => (result = r));
  await clock.advance(5000);
  assert.equal(result, null);
  done = true;
  wake.notify();
  await clock.settle();
  assert.equal(result, true);

  let never: boolean | null = null;
  void wake.until(() => false, 1000).then((r) => (never = r));
  await clock.advance(999);
  assert.equal(never, null);
  await clock.advance(1);
  assert.equal(never, false);
});
