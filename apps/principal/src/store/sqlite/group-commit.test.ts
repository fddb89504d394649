import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import Database from "better-sqlite3";
import { CdktrError, systemClock } from "@cdktr/protocol";
import { makeTempDir, removeTempDirs } from "@cdktr/test-utils";
import { GroupCommit, MORE_PIECES } from "./group-commit.js";

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

  it("a command in pieces runs a piece per turn, its pieces share a transaction while only bulk work waits, and a control command queued between pieces commits what ran first and waits for one piece at most", async () => {
    const { db, commit } = open();
    const reader = new Database(db.name, { readonly: true });
    const ins = db.prepare("INSERT INTO t VALUES (?, ?, ?)");
    const count = "SELECT count(*) AS n FROM t WHERE lane = 'bulk'";
    const rows = (): number => (db.prepare(count).get() as { n: number }).n;
    const committed = (): number => (reader.prepare(count).get() as { n: number }).n;
    const total = 200_000;
    let written = 0;
    let pieces = 0;
    const order: string[] = [];
    const big = commit
      .commandInPieces((_now, inTime) => {
        pieces++;
        do ins.run("bulk", ++written, "x".repeat(100));
        while (written < total && inTime());
        return written < total ? MORE_PIECES : written;
      })
      .then((n) => {
        order.push("big");
        return n;
      });
    const after = commit.command(() => ins.run("bulk", 0, "after"), "bulk").then(() => order.push("after"));
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    const piecesBefore = pieces;
    assert.ok(piecesBefore >= 1 && written < total, `${piecesBefore} pieces ran, ${written} rows`);
    assert.equal(committed(), 0, "the pieces so far are in one open transaction");
    const control = await commit.command(() => {
      ins.run("control", 0, "");
      return rows();
    });
    assert.ok(control > 0 && control < total, `the control command ran after ${control} of ${total} rows`);
    assert.ok(committed() >= control - 1, "the open bulk transaction was committed before the control command");
    assert.equal(await big, total);
    await after;
    assert.deepEqual(order, ["big", "after"]);
    assert.ok(pieces > 2, `written in ${pieces} pieces`);
    assert.equal(committed(), total + 1);
    reader.close();
    await commit.close();
    db.close();
  });

  it("a failed bulk transaction rejects every command that wrote in it, including a command in pieces, and the lanes go on", async () => {
    const { db, commit } = open();
    const ins = db.prepare("INSERT INTO t VALUES (?, ?, '')");
    let step = 0;
    const small = commit.command(() => ins.run("bulk", 1000), "bulk");
    const pieces = commit.commandInPieces(() => {
      step++;
      ins.run("bulk", step);
      if (step === 3) {
        // What SQLite does on a full disk: the whole transaction is rolled back.
        db.exec("ROLLBACK");
        throw Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" });
      }
      return MORE_PIECES;
    });
    const later = commit.command(() => ins.run("bulk", 99), "bulk");
    await assert.rejects(small, (e: unknown) => e instanceof CdktrError && e.code === "STORAGE_FULL");
    await assert.rejects(pieces, (e: unknown) => e instanceof CdktrError && e.code === "STORAGE_FULL");
    await later;
    const ns = (db.prepare("SELECT n FROM t ORDER BY rowid").all() as { n: number }[]).map((r) => r.n);
    assert.deepEqual(ns, [99]);
    assert.equal(commit.storageFull, false, "a later commit that wrote clears the full flag");
    await commit.close();
    db.close();
  });

  it("a piece that throws rejects its command, keeps what earlier pieces committed, and the queue goes on", async () => {
    const { db, commit } = open();
    const ins = db.prepare("INSERT INTO t VALUES (?, ?, '')");
    let step = 0;
    const failing = commit.commandInPieces(() => {
      step++;
      ins.run("bulk", step);
      if (step === 3) throw new CdktrError("STALE_ASSIGNMENT", "lease lost");
      return MORE_PIECES;
    });
    const next = commit.command(() => ins.run("bulk", 99), "bulk");
    await assert.rejects(failing, (e: unknown) => e instanceof CdktrError && e.code === "STALE_ASSIGNMENT");
    await next;
    const ns = (db.prepare("SELECT n FROM t ORDER BY rowid").all() as { n: number }[]).map((r) => r.n);
    assert.deepEqual(ns, [1, 2, 99]);
    await commit.close();
    db.close();
  });
});
