import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import Database from "better-sqlite3";
import { CdktrError, systemClock } from "@cdktr/protocol";
import { makeTempDir, removeTempDirs } from "@cdktr/test-utils";
import { GroupCommit } from "./group-commit.js";
import { mainWriteTurn, newWriteTurnsBuffer } from "./write-turns.js";

after(removeTempDirs);

const turnsUrl = new URL("./write-turns.js", import.meta.url).href;
const commitUrl = new URL("./group-commit.js", import.meta.url).href;

/** Run `body` (an async ES module body, with `data` = workerData) in a worker thread; resolves with what it posts. */
function inThread<T>(body: string, data: unknown): { result: Promise<T>; worker: Worker } {
  const worker = new Worker(`import { parentPort, workerData as data } from "node:worker_threads";\n${body}`, {
    eval: true,
    workerData: data,
    type: "module",
  } as ConstructorParameters<typeof Worker>[1]);
  const result = new Promise<T>((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
  return { result, worker };
}

describe("write turns between the main thread and the log-ingest thread", { timeout: 60_000 }, () => {
  it("the two sides are never inside at once", async () => {
    const turns = newWriteTurnsBuffer();
    // [0] who is inside now (a count), [1] times someone found the other inside, [2] the thread's rounds.
    const shared = new Int32Array(new SharedArrayBuffer(3 * 4));
    const rounds = 3000;
    const { result } = inThread<number>(
      `const { logsWriteTurn } = await import(${JSON.stringify(turnsUrl)});
       const turn = logsWriteTurn(data.turns);
       const s = new Int32Array(data.shared);
       for (let i = 0; i < data.rounds; i++) {
         turn.acquire();
         if (Atomics.add(s, 0, 1) !== 0) Atomics.add(s, 1, 1);
         for (let k = 0; k < 200; k++) Math.sqrt(k);
         Atomics.sub(s, 0, 1);
         turn.release();
         Atomics.add(s, 2, 1);
       }
       parentPort.postMessage(Atomics.load(s, 2));`,
      { turns, shared: shared.buffer, rounds },
    );
    const turn = mainWriteTurn(turns);
    let mine = 0;
    // Go on while the thread runs, so that both sides contend for most of the test.
    while (Atomics.load(shared, 2) < rounds && mine < 100_000) {
      turn.acquire();
      if (Atomics.add(shared, 0, 1) !== 0) Atomics.add(shared, 1, 1);
      for (let k = 0; k < 200; k++) Math.sqrt(k);
      Atomics.sub(shared, 0, 1);
      turn.release();
      mine++;
      if (mine % 500 === 0) await new Promise((r) => setImmediate(r));
    }
    assert.equal(await result, rounds);
    assert.ok(mine > 0);
    assert.equal(Atomics.load(shared, 1), 0, "neither side ever found the other inside");
  });

  it("two connections writing the same file through group commits with turns: no busy error, every row stored", async () => {
    const path = join(makeTempDir("cdktr-turns-"), "t.db");
    const db = new Database(path);
    db.pragma("journal_mode = WAL");
    db.pragma("busy_timeout = 5000");
    db.exec("CREATE TABLE t (side TEXT NOT NULL, n INTEGER NOT NULL, pad TEXT NOT NULL)");
    const turns = newWriteTurnsBuffer();
    const batches = 40;
    const { result } = inThread<number>(
      `const { logsWriteTurn } = await import(${JSON.stringify(turnsUrl)});
       const { GroupCommit, MORE_PIECES } = await import(${JSON.stringify(commitUrl)});
       const { default: Database } = await import("better-sqlite3");
       const db = new Database(data.path);
       db.pragma("busy_timeout = 5000");
       const commit = new GroupCommit({
         db, clock: { now: () => Date.now() },
         storageFull: () => new Error("full"),
         turn: logsWriteTurn(data.turns),
       });
       const ins = db.prepare("INSERT INTO t VALUES ('logs', ?, ?)");
       const done = [];
       for (let b = 0; b < data.batches; b++) {
         let next = 0;
         done.push(commit.commandInPieces((_now, inTime) => {
           const first = next;
           while (next < 2000 && (next === first || inTime())) ins.run(b * 2000 + next++, "x".repeat(200));
           return next < 2000 ? MORE_PIECES : next;
         }, "bulk"));
       }
       const stored = (await Promise.all(done)).reduce((a, n) => a + n, 0);
       await commit.close();
       db.close();
       parentPort.postMessage(stored);`,
      { path, turns, batches },
    );
    const commit = new GroupCommit({
      db,
      clock: systemClock,
      storageFull: (cause) => new CdktrError("STORAGE_FULL", "full", { cause }),
      turn: mainWriteTurn(turns),
    });
    const ins = db.prepare("INSERT INTO t VALUES ('main', ?, '')");
    for (let i = 0; i < 100; i++) {
      await commit.command(() => ins.run(i));
      await new Promise((r) => setTimeout(r, 2));
    }
    assert.equal(await result, batches * 2000);
    await commit.close();
    const count = (side: string): number =>
      (db.prepare("SELECT count(*) AS n FROM t WHERE side = ?").get(side) as { n: number }).n;
    assert.deepEqual([count("main"), count("logs")], [100, batches * 2000]);
    db.close();
  });
});
