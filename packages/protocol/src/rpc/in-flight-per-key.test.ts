import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { waitFor } from "@cdktr/test-base";
import { API_VERBS, type ApiVerbs } from "../messages.js";
import { CdktrError, isCdktrError } from "../errors.js";
import type { KeyIdentity } from "../security/identity.js";
import { type ClientKey, generateKeyPair } from "../security/key-file.js";
import { RpcClient } from "./rpc-client.js";
import { RpcServer } from "./rpc-server.js";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

describe("RpcServer requests in flight per key", () => {
  it("at most maxInFlightPerKey requests of one key run at once over all its connections; another key is not held back", async () => {
    const server = generateKeyPair();
    const enrolled = new Map<string, KeyIdentity>();
    const key = (name: string): ClientKey => {
      const pair = generateKeyPair();
      enrolled.set(pair.publicKey, { name, role: "operator", scope: name, workflows: null, publicKey: pair.publicKey });
      return { name, ...pair, principalPublicKey: server.publicKey };
    };
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => {
      release = r;
    });
    let started = 0;
    const rpc = new RpcServer({
      endpoint: "tcp://127.0.0.1:0",
      verbs: API_VERBS,
      maxInFlightPerPeer: 100,
      maxInFlightPerKey: 6,
      auth: { keyPair: server, identify: (k) => enrolled.get(k), permits: () => true },
    }).handle("getWorkflow", async ({ workflowId }) => {
      started++;
      await held;
      throw new CdktrError("WORKFLOW_NOT_FOUND", `no workflow ${workflowId}`);
    });
    await rpc.bind();
    cleanups.push(() => rpc.close());
    const flooder = key("flooder");
    const client = (k: ClientKey): RpcClient<ApiVerbs> => {
      const c = new RpcClient({
        endpoint: rpc.endpoint ?? "",
        verbs: API_VERBS,
        key: k,
        timeoutMs: 5000,
        retry: { attempts: 1 },
      });
      cleanups.push(() => c.close());
      return c;
    };
    const outcome = (c: RpcClient<ApiVerbs>, id: string): Promise<string> =>
      c.request("getWorkflow", { workflowId: id }).then(
        () => "resolved",
        (e: unknown) => (isCdktrError(e) ? e.code : String(e)),
      );
    // Three connections of one key, two requests each: the key's six.
    const conns = [client(flooder), client(flooder), client(flooder)];
    const first = conns.flatMap((c, i) => [outcome(c, `wf-${i}-a`), outcome(c, `wf-${i}-b`)]);
    await waitFor(() => started === 6, { what: "six handlers running" });
    // One more from a fourth connection of the same key is refused at once, as retryable.
    const fourth = client(flooder);
    const refused = await fourth.request("getWorkflow", { workflowId: "wf-more" }).then(
      () => assert.fail("expected a refusal"),
      (e: unknown) => e,
    );
    assert.ok(isCdktrError(refused, "RESOURCE_EXHAUSTED") && refused.retryable, String(refused));
    assert.match(refused.message, /key `flooder`/);
    // Another key is not held back.
    const other = outcome(client(key("other")), "wf-other");
    await waitFor(() => started === 7, { what: "the other key's handler running" });
    release();
    assert.deepEqual(await Promise.all(first), Array(6).fill("WORKFLOW_NOT_FOUND"));
    assert.equal(await other, "WORKFLOW_NOT_FOUND");
    // Once replied, the key may send again.
    assert.equal(await outcome(fourth, "wf-again"), "WORKFLOW_NOT_FOUND");
  });
});
