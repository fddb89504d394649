import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { freePort } from "@cdktr/test-base";

const fixture = fileURLToPath(new URL("./fixtures/close-exit.js", import.meta.url));

/** Run the fixture; resolve with its exit and output, or kill it after `capMs`. */
function run(args: string[], capMs = 15_000): Promise<{ code: number | null; timedOut: boolean; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [fixture, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, capMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, timedOut, out });
    });
  });
}

describe("close() lets the process exit by itself", () => {
  it("after a request to an absent principal", async () => {
    const r = await run(["absent", String(await freePort())]);
    assert.equal(r.timedOut, false, `process did not exit:\n${r.out}`);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /ping: TIMEOUT\nclosed\n/);
  });

  it("after serving requests and publishing", async () => {
    const r = await run(["served"]);
    assert.equal(r.timedOut, false, `process did not exit:\n${r.out}`);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /ping: cdktr\nclosed\n/);
  });

  it("with a request in flight", async () => {
    const r = await run(["pending"]);
    assert.equal(r.timedOut, false, `process did not exit:\n${r.out}`);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /listAgents: CLOSED\nclosed\n/);
  });
});
