import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import Database from "better-sqlite3";
import { CdktrError, systemClock } from "@cdktr/protocol";
import { makeTempDir, removeTempDirs } from "@cdktr/test-utils";
import { GroupCommit } from "./group-commit.js";

after(removeTempDirs);

function open(): { db: Database.Database; commit: GroupCommit } {
  const db = new Database(join(makeTempDir("cdktr-gc-"), "t.db"));
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.exec("CREATE TABLE t (lane TEXT NOT NULL, n INTEGER NOT NULL, pad TEXT NOT NULL)");
  const commit = new GroupCommit({
    db,
    clock: systemClock,
    storageFull: (cause) => new CdktrError("STORAGE_FULL", "full", { cause }),
  });
  return { db, commit };
}

describe("GroupCommit lanes", () => {
  it("a control command queued behind 200 slow bulk commands commits within one flush of bulk work, and each lane keeps its order", async () => {
    const { db, commit } = open();
    const ins = db.prepare("INSERT INTO t VALUES (?, ?, ?)");
    const order: string[] = [];
    const bulk: Promise<void>[] = [];
    for (let i = 0; i < 200; i++) {
      bulk.push(
        commit
          .command(() => {
            for (let k = 0; k < 500; k++) ins.run("bulk", i, "x".repeat(100));
          }, "bulk")
          .then(() => {
            order.push(`bulk ${i}`);
          }),
      );
    }
    const control: Promise<void>[] = [];
    for (let i = 0; i < 3; i++) {
      control.push(
        commit
          .command(() => ins.run("control", i, ""))
          .then(() => {
            order.push(`control ${i}`);
          }),
      );
    }
    await Promise.all([...bulk, ...control]);
    const firstControl = order.indexOf("control 0");
    // The first flush runs the control commands first and then bulk work for the rest of its slice.
    assert.ok(firstControl >= 0 && firstControl < 50, `control acknowledged after ${firstControl} bulk commands`);
    assert.deepEqual(
      order.filter((o) => o.startsWith("control")),
      ["control 0", "control 1", "control 2"],
    );
    assert.deepEqual(
      order.filter((o) => o.startsWith("bulk")),
      Array.from({ length: 200 }, (_, i) => `bulk ${i}`),
    );
    assert.equal((db.prepare("SELECT count(*) AS n FROM t").get() as { n: number }).n, 200 * 500 + 3);
    await commit.close();
    db.close();
  });

  it("drain waits for both lanes", async () => {
    const { db, commit } = open();
    const ins = db.prepare("INSERT INTO t VALUES (?, ?, '')");
    for (let i = 0; i < 20; i++) void commit.command(() => ins.run("bulk", i), "bulk");
    void commit.command(() => ins.run("control", 0));
    await commit.drain();
    assert.equal((db.prepare("SELECT count(*) AS n FROM t").get() as { n: number }).n, 21);
    await commit.close();
    db.close();
  });
});
