import { CdktrError, type API_VERBS } from "@cdktr/protocol";
import type { HandlerRegistry } from "../leader/leader-gate.js";
import type { ApiContext } from "./api-context.js";

/**
 * Register the key verbs (operator keys only, by the role matrix): `enrollKey` (a public key made
 * by the client: the secret half never reaches the principal), `listKeys` and `revokeKey`. A
 * revoked key is refused at once on the API and log ports (every request asks the key ring); the
 * publish socket is re-bound so that its subscriptions end too.
 */
export function registerKeyHandlers(server: HandlerRegistry<typeof API_VERBS>, ctx: ApiContext): void {
  const { store, logger } = ctx;
  server
    .handle("enrollKey", async (req, rpc) => {
      const { key, created } = await store.enrollKey({
        name: req.name,
        role: req.role,
        scope: req.scope ?? req.name,
        workflows: req.workflows ?? null,
        publicKey: req.publicKey,
      });
      ctx.keys?.add(key);
      if (created) {
        logger.info("key enrolled", {
          key: key.name,
          role: key.role,
          scope: key.scope,
          workflows: key.workflows,
          publicKey: key.publicKey,
          by: rpc.identity?.name ?? null,
        });
      }
      return { key };
    })
    .handle("listKeys", async () => ({ keys: await store.listKeys() }))
    .handle("revokeKey", async ({ name }, rpc) => {
      const res = await store.revokeKey(name);
      if (res === null) {
        throw new CdktrError("KEY_NOT_FOUND", `no key named \`${name}\`: \`cdktr keys list\` shows the keys`, {
          context: { name },
        });
      }
      ctx.keys?.remove(res.key.publicKey);
      if (res.revoked) {
        logger.warn("key revoked", { key: res.key.name, role: res.key.role, by: rpc.identity?.name ?? null });
        await ctx.onKeyRevoked(res.key);
      }
      return res;
    });
}
