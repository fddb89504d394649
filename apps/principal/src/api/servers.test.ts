import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { AdvertisedEndpoints } from "@cdktr/protocol";
import type { ApiContext } from "./api-context.js";
import { principalPing } from "./servers.js";

const self: AdvertisedEndpoints = { api: "tcp://p1:5561", logs: "tcp://p1:5562", publish: "tcp://p1:5563" };

/** The parts of the context `ping` reads: an elected principal whose term is or is not loaded. */
function context(role: "leader" | "standby", termReady: boolean): ApiContext {
  return {
    store: { problems: () => [] },
    role: { problems: () => [], ping: () => ({ role, leader: self, epoch: 3 }) },
    termReady: () => termReady,
    workflows: { setHash: "h" },
  } as unknown as ApiContext;
}

describe("ping's role", () => {
  const id = { serverId: "principal@p1", version: "0" };

  it("is leader once the term is loaded", () => {
    const r = principalPing(context("leader", true), id);
    assert.equal(r.role, "leader");
    assert.deepEqual(r.leader, self);
    assert.equal(r.epoch, 3);
  });

  it("is standby, naming itself as the leader, while an elected principal still loads its term (writes would get NOT_LEADER)", () => {
    const r = principalPing(context("leader", false), id);
    assert.equal(r.role, "standby");
    assert.deepEqual(r.leader, self, "clients are sent to it: it leads once loaded");
    assert.equal(r.epoch, 3);
    assert.equal(r.health, "ok");
  });

  it("is standby on a standby, whatever its (absent) term", () => {
    assert.equal(principalPing(context("standby", false), id).role, "standby");
  });
});
