/**
 * The principal's side of the secure wire, put together at start: its key pair, the local client
 * keys, the in-memory key ring, and what the servers and the publisher ask (`identify`, the role
 * matrix per verb and per topic).
 */
import { isCdktrError, type KeyPair, type Logger, type PublisherAuth, type ServerAuth } from "@cdktr/protocol";
import type { Store } from "../store/store.js";
import { KeyRing } from "./key-ring.js";
import { ensureLocalKeys, loadPrincipalKey } from "./local-keys.js";
import { permitsTopic, permitsVerb } from "./roles.js";

/** What {@link setUpAuth} returns. */
export interface PrincipalAuth {
  keyPair: KeyPair;
  keys: KeyRing;
  /** For the API and log-ingest servers. */
  server: ServerAuth;
  /** For the publisher. */
  publisher: PublisherAuth;
  /** Load the enrolled keys again (a standby: the leader enrols and revokes). */
  reload: () => Promise<void>;
  /** When a term of leadership begins: enrol the missing local keys, then {@link reload}. */
  beginTerm: () => Promise<void>;
}

/**
 * Load (or make) the principal's pair and the local client keys in `keysDir`, enrol the local
 * keys the store does not know (unless this principal is a standby: then when it leads), and
 * load every enrolled key.
 * @throws PrincipalStartError KEYS_UNAVAILABLE naming the directory and `CDKTR_KEYS_DIR`.
 */
export async function setUpAuth(keysDir: string, store: Store, logger: Logger): Promise<PrincipalAuth> {
  const keyPair = loadPrincipalKey(keysDir, logger);
  try {
    await ensureLocalKeys(keysDir, keyPair.publicKey, store, logger);
  } catch (e) {
    // Several principals on one database: only the leader writes (see beginTerm).
    if (!isCdktrError(e, "NOT_LEADER")) throw e;
  }
  const keys = new KeyRing();
  const reload = async (): Promise<void> => keys.load(await store.listKeys());
  await reload();
  const identify = (publicKey: string) => keys.identify(publicKey);
  return {
    keyPair,
    keys,
    reload,
    beginTerm: async () => {
      await ensureLocalKeys(keysDir, keyPair.publicKey, store, logger);
      await reload();
    },
    server: { keyPair, identify, permits: permitsVerb },
    publisher: {
      keyPair,
      identify,
      permitsTopic: (identity, topic) =>
        permitsTopic(identity, topic, async (workflowId, runId) => {
          const r = await store.getRun(runId);
          return r !== null && r.run.workflowId === workflowId ? { triggeredBy: r.run.triggeredBy } : undefined;
        }),
    },
  };
}
