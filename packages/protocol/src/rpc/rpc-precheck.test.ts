import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Dealer } from "zeromq";
import { API_VERBS } from "../messages.js";
import { CdktrError } from "../errors.js";
import { PROTOCOL } from "./frames.js";
import { PrincipalClient } from "./principal-client.js";
import { RpcServer } from "./rpc-server.js";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

describe("RpcServer prechecks", () => {
  it("refuses a request from its JSON before the schema is applied and the handler runs; others pass through", async () => {
    let handled = 0;
    const seen: unknown[] = [];
    const server = new RpcServer({ endpoint: "tcp://127.0.0.1:0", verbs: API_VERBS })
      .handle("getWorkflow", ({ workflowId }) => {
        handled++;
        throw new CdktrError("WORKFLOW_NOT_FOUND", `no workflow ${workflowId}`);
      })
      .precheck("getWorkflow", (json, ctx) => {
        seen.push(ctx.identity);
        const id = (json as { workflowId?: unknown }).workflowId;
        if (id === "busy" || id === 42) {
          throw new CdktrError("RESOURCE_EXHAUSTED", "busy: send it again later", { retryable: true });
        }
      });
    await server.bind();
    cleanups.push(() => server.close());
    const c = new PrincipalClient({ endpoint: server.endpoint ?? "", timeoutMs: 5000, retry: { attempts: 1 } });
    cleanups.push(() => c.close());
    const code = (p: Promise<unknown>): Promise<string> =>
      p.then(
        () => "resolved",
        (e: CdktrError) => e.code,
      );
    assert.equal(await code(c.getWorkflow("busy")), "RESOURCE_EXHAUSTED");
    // A body the schema refuses, refused by the precheck first: it ran before the schema.
    const raw = new Dealer({ linger: 0, receiveTimeout: 5000 });
    cleanups.push(() => raw.close());
    raw.connect(server.endpoint ?? "");
    await raw.send([PROTOCOL, "r1", "0", "getWorkflow", JSON.stringify({ workflowId: 42 })]);
    const [, , status, body] = await raw.receive();
    assert.equal(status?.toString(), "error");
    assert.equal((JSON.parse(body?.toString() ?? "{}") as { code?: string }).code, "RESOURCE_EXHAUSTED");
    assert.equal(handled, 0);
    assert.equal(await code(c.getWorkflow("other")), "WORKFLOW_NOT_FOUND");
    assert.equal(handled, 1);
    assert.deepEqual(seen, [null, null, null], "without authentication the identity is null");
  });
});
