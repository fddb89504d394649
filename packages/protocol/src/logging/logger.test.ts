import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { createLogger, noopLogger } from "./logger.js";

function capture(): { stream: PassThrough; lines: () => string[] } {
  const stream = new PassThrough();
  const chunks: string[] = [];
  stream.on("data", (c: Buffer) => chunks.push(c.toString("utf8")));
  return {
    stream,
    lines: () =>
      chunks
        .join("")
        .split("\n")
        .filter((l) => l !== ""),
  };
}

const tick = () => new Promise((r) => setImmediate(r));

describe("createLogger", () => {
  it("writes one JSON object per line with level, message, component, meta and time", async () => {
    const { stream, lines } = capture();
    const log = createLogger({ component: "principal", level: "info", pretty: false, stream });
    log.info("ready", { endpoint: "tcp://127.0.0.1:5561" });
    log.debug("hidden");
    log.child({ runId: "r1" }).warn("slow", { ms: 5 });
    log.error("failed", { error: new Error("boom") });
    await tick();
    const recs = lines().map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(recs.length, 3, "debug is below the level");
    assert.deepEqual(Object.keys(recs[0] ?? {}), ["level", "message", "component", "endpoint", "time"]);
    assert.equal(recs[0]?.message, "ready");
    assert.equal(recs[0]?.component, "principal");
    assert.match(String(recs[0]?.time), /^\d{4}-\d\d-\d\dT/);
    assert.equal(recs[1]?.runId, "r1");
    assert.equal(recs[1]?.level, "warn");
    assert.equal((recs[2]?.error as { message?: string } | undefined)?.message, "boom");
  });

  it("writes readable lines when pretty", async () => {
    const { stream, lines } = capture();
    createLogger({ component: "agent", level: "debug", pretty: true, stream }).debug("started", { slots: 4 });
    await tick();
    assert.match(lines()[0] ?? "", /DEBUG \[agent\] started slots=4$/);
  });

  it("format: `json` on a terminal, `pretty` elsewhere; colours only where asked or on a terminal", async () => {
    const tty = capture();
    (tty.stream as unknown as { isTTY: boolean }).isTTY = true;
    createLogger({ component: "agent", level: "info", format: "json", stream: tty.stream }).info("ready");
    const pipe = capture();
    createLogger({ component: "agent", level: "info", format: "pretty", stream: pipe.stream }).error("boom", { n: 1 });
    const colored = capture();
    createLogger({ component: "agent", level: "info", format: "pretty", color: true, stream: colored.stream }).error(
      "boom",
      { n: 1 },
    );
    await tick();
    assert.equal((JSON.parse(tty.lines()[0] ?? "{}") as { message?: string }).message, "ready");
    assert.match(pipe.lines()[0] ?? "", /^\d\d:\d\d:\d\d\.\d{3} ERROR \[agent\] boom n=1$/);
    const ESC = String.fromCharCode(27);
    assert.ok(!(pipe.lines()[0] ?? "").includes(ESC), "no colours on a pipe");
    const line = colored.lines()[0] ?? "";
    assert.ok(line.includes(`${ESC}[31mERROR${ESC}[0m`), `the level in red: ${JSON.stringify(line)}`);
    assert.ok(line.includes(`${ESC}[36m[agent]${ESC}[0m boom`), `the component in cyan: ${JSON.stringify(line)}`);
  });

  it("noopLogger accepts everything", () => {
    noopLogger.child({ a: 1 }).error("x", { y: 2 });
  });
});
