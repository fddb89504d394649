import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "@cdktr/protocol";
import { UlidGenerator } from "./ids.js";

describe("UlidGenerator", () => {
  it("is strictly increasing within one millisecond and when the clock steps back", async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 28));
    const gen = new UlidGenerator(clock);
    const ids: string[] = [];
    for (let i = 0; i < 5000; i++) ids.push(gen.next());
    clock.setNow(clock.now() - 60_000);
    for (let i = 0; i < 100; i++) ids.push(gen.next());
    await clock.advance(120_000);
    ids.push(gen.next());
    for (const id of ids) assert.match(id, /^[0-9A-HJKMNP-TV-Z]{26}$/);
    for (let i = 1; i < ids.length; i++)
      assert.ok((ids[i - 1] ?? "") < (ids[i] ?? ""), `ids[${i}] sorts after ids[${i - 1}]`);
  });

  it("sorts by time across milliseconds", async () => {
    const clock = new ManualClock(1_000);
    const gen = new UlidGenerator(clock);
    const a = gen.next();
    await clock.advance(1);
    const b = gen.next();
    assert.ok(a < b);
    assert.equal(a.slice(0, 10), "00000000Z8", "1000 ms = 31*32 + 8");
  });
});
