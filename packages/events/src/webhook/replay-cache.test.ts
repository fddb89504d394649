/**
 * The webhook replay cache on a real directory, on fake time: entries survive reopening, released
 * ones do not, expired files are deleted, a damaged file is reported (not fatal), a write that
 * fails (a full disk: /dev/full) or a full cache refuses the signature, and an unusable directory
 * refuses to start.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { noopLogger, type Logger } from "@cdktr/protocol";
import { makeTempDir, removeTempDirs } from "@cdktr/test-utils";
import { ListenerStartError, ReplayCacheError } from "../errors.js";
import { ReplayCache, replayCacheDirName } from "./replay-cache.js";

const TOLERANCE = 300_000;
const sig = (n: number): string => n.toString(16).padStart(64, "0");

/** A logger that keeps its warnings. */
function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  const l: Logger & { warnings: string[] } = {
    warnings,
    debug: () => undefined,
    info: () => undefined,
    warn: (m) => warnings.push(m),
    error: () => undefined,
    child: () => l,
  };
  return l;
}

describe("webhook replay cache", () => {
  after(removeTempDirs);
  let clock = 1_764_288_000_000;
  const now = (): number => clock;
  const open = (dir: string | null, extra: { maxEntries?: number; logger?: Logger } = {}) =>
    ReplayCache.open({
      dir,
      toleranceMs: TOLERANCE,
      maxEntries: extra.maxEntries ?? 1000,
      now,
      logger: extra.logger ?? noopLogger,
    });

  test("a claimed signature is refused again, also after the cache is closed and reopened (a restart)", async () => {
    const dir = join(makeTempDir("cdktr-replay-"), "cache");
    const a = await open(dir);
    assert.equal(await a.claim(sig(1), clock + TOLERANCE), true);
    assert.equal(await a.claim(sig(1), clock + TOLERANCE), false, "same process");
    assert.equal(await a.claim(sig(2), clock + TOLERANCE), true);
    await a.release(sig(2));
    a.close();
    clock += 60_000;
    const b = await open(dir);
    assert.notEqual(b, a, "closed: reopened from disk");
    assert.equal(b.lostAtMs, null);
    assert.equal(b.size, 1);
    assert.equal(await b.claim(sig(1), clock + TOLERANCE), false, "after the restart");
    assert.equal(await b.claim(sig(2), clock + TOLERANCE), true, "a released signature is free again");
    b.close();
  });

  test("caches opened twice in one process on one directory are one cache", async () => {
    const dir = join(makeTempDir("cdktr-replay-"), "cache");
    const [a, b] = await Promise.all([open(dir), open(dir)]);
    assert.equal(a, b);
    assert.equal(await a.claim(sig(3), clock + TOLERANCE), true);
    assert.equal(await b.claim(sig(3), clock + TOLERANCE), false);
    a.close();
    b.close();
  });

  test("expired entries are forgotten and files whose entries all expired are deleted", async () => {
    const dir = join(makeTempDir("cdktr-replay-"), "cache");
    const c = await open(dir);
    assert.equal(await c.claim(sig(4), clock + TOLERANCE), true);
    const first = readdirSync(dir);
    assert.equal(first.length, 1);
    clock += 3 * TOLERANCE + 1;
    assert.equal(await c.claim(sig(4), clock + TOLERANCE), true, "expired: accepted again");
    clock += 3 * TOLERANCE + 1;
    assert.equal(await c.claim(sig(5), clock + TOLERANCE), true);
    const files = readdirSync(dir);
    assert.ok(!files.includes(first[0] ?? ""), `the first file is gone: ${files.join(", ")}`);
    assert.ok(files.length <= 2, files.join(", "));
    c.close();
    const reopened = await open(dir);
    assert.equal(reopened.size, 1, "only the live entry is loaded");
    reopened.close();
  });

  test("a damaged file is logged, not fatal: the cache says it may have lost entries", async () => {
    const dir = join(makeTempDir("cdktr-replay-"), "cache");
    const c = await open(dir);
    assert.equal(await c.claim(sig(6), clock + TOLERANCE), true);
    c.close();
    const [file] = readdirSync(dir);
    appendFileSync(join(dir, file ?? ""), "\nuse 17642880 torn-li");
    writeFileSync(join(dir, "not-ours.txt"), "ignored");
    const logger = recordingLogger();
    const d = await open(dir, { logger });
    assert.equal(d.lostAtMs, clock);
    assert.match(logger.warnings.join("\n"), /replay cache damaged/);
    assert.equal(await d.claim(sig(6), clock + TOLERANCE), false, "the readable entries are kept");
    d.close();
    // Garbage only: still starts.
    const other = join(makeTempDir("cdktr-replay-"), "cache");
    mkdirSync(other);
    writeFileSync(join(other, "0.log"), Buffer.from([0xff, 0x00, 0x0a, 0x41]));
    const e = await open(other);
    assert.equal(e.lostAtMs, clock);
    e.close();
  });

  test("a write that fails (full disk) refuses the signature and records nothing", async () => {
    const dir = join(makeTempDir("cdktr-replay-"), "cache");
    const c = await open(dir);
    const [file] = readdirSync(dir);
    rmSync(join(dir, file ?? ""));
    symlinkSync("/dev/full", join(dir, file ?? ""));
    await assert.rejects(c.claim(sig(7), clock + TOLERANCE), (e: unknown) => {
      assert.ok(e instanceof ReplayCacheError);
      assert.equal(e.code, "REPLAY_CACHE_UNAVAILABLE");
      assert.match(e.message, /cannot write the replay cache/);
      return true;
    });
    assert.equal(c.size, 0, "nothing recorded");
    rmSync(join(dir, file ?? ""));
    assert.equal(await c.claim(sig(7), clock + TOLERANCE), true, "the disk has room again");
    assert.match(readFileSync(join(dir, file ?? ""), "utf8"), new RegExp(`use \\d+ ${sig(7)}`));
    c.close();
  });

  test("a full cache refuses new signatures instead of forgetting live ones", async () => {
    const c = await open(null, { maxEntries: 2 });
    assert.equal(await c.claim(sig(8), clock + TOLERANCE), true);
    assert.equal(await c.claim(sig(9), clock + TOLERANCE), true);
    await assert.rejects(c.claim(sig(10), clock + TOLERANCE), /maximum of 2 signatures/);
    assert.equal(await c.claim(sig(8), clock + TOLERANCE), false, "still remembered");
    clock += TOLERANCE + 1;
    assert.equal(await c.claim(sig(10), clock + TOLERANCE), true, "room once the old ones expired");
  });

  test("a directory that cannot be created refuses to start, naming the setting", async () => {
    const file = join(makeTempDir("cdktr-replay-"), "a-file");
    writeFileSync(file, "");
    await assert.rejects(open(join(file, "cache")), (e: unknown) => {
      assert.ok(e instanceof ListenerStartError);
      assert.match(e.message, /cannot create the webhook replay cache directory .*CDKTR_LISTENERS_STATE_DIR/);
      return true;
    });
  });

  test("the directory name depends on the secret only", () => {
    assert.equal(replayCacheDirName("a"), replayCacheDirName("a"));
    assert.notEqual(replayCacheDirName("a"), replayCacheDirName("b"));
    assert.match(replayCacheDirName("a"), /^webhook-replay-[0-9a-f]{16}$/);
  });
});
