import { after, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { noopLogger } from "@cdktr/protocol";
import { makeTempDir, removeTempDirs } from "@cdktr/test-utils";
import { claimSession, currentBootId } from "./session-file.js";
import { noSyncOps, SyncBatch } from "./sync-batch.js";

after(removeTempDirs);

const sync = new SyncBatch({ ops: noSyncOps, logger: noopLogger });

test("each claim is a new session; the previous one is named only on the same boot", () => {
  const dir = makeTempDir("cdktr-session-");
  const first = claimSession(dir, noopLogger, sync, "boot-a");
  assert.equal(first.predecessor, null, "nothing before the first");
  assert.match(first.session, /^[A-Za-z0-9_-]{8,64}$/);
  const second = claimSession(dir, noopLogger, sync, "boot-a");
  assert.notEqual(second.session, first.session);
  assert.equal(second.predecessor, first.session);
  const afterReboot = claimSession(dir, noopLogger, sync, "boot-b");
  assert.equal(afterReboot.predecessor, null, "another boot: its journal may have lost lines");
  const noBootId = claimSession(dir, noopLogger, sync, null);
  assert.equal(noBootId.predecessor, null);
  assert.equal(claimSession(dir, noopLogger, sync, null).predecessor, null, "no boot id: never trusted");
  const record = JSON.parse(readFileSync(join(dir, "session.json"), "utf8")) as { bootId: unknown };
  assert.equal(record.bootId, null);
});

test("this machine has a boot id (Linux)", () => {
  assert.match(currentBootId() ?? "", /^[0-9a-f-]{36}$/);
});
