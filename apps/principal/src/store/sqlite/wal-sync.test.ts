import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import Database from "better-sqlite3";
import { makeTempDir, removeTempDirs } from "@cdktr/test-utils";
import { WalSync } from "./wal-sync.js";

after(removeTempDirs);

describe("WalSync", () => {
  it("syncs the write-ahead log of a WAL database, also after a checkpoint truncated it", () => {
    const db = new Database(join(makeTempDir("cdktr-wal-"), "t.db"));
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    db.exec("CREATE TABLE t (n INTEGER)");
    const wal = new WalSync(db);
    assert.equal(wal.available, true);
    db.prepare("INSERT INTO t VALUES (1)").run();
    wal.sync();
    db.pragma("wal_checkpoint(TRUNCATE)");
    db.prepare("INSERT INTO t VALUES (2)").run();
    wal.sync();
    wal.close();
    wal.close();
    db.close();
  });

  it("is not available for a database without a write-ahead log", () => {
    const db = new Database(":memory:");
    const wal = new WalSync(db);
    assert.equal(wal.available, false);
    wal.sync();
    db.close();
  });
});
