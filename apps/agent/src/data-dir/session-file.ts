/**
 * The agent process's session: a new id at every start, recorded in `<dataDir>/session.json`
 * with the machine's boot id, so that the next process on the same data directory knows whose
 * status journal it inherits and whether that journal can be trusted to list every run its
 * writer started (see `AgentPredecessorSchema` in `@cdktr/protocol`).
 */
import { randomBytes } from "node:crypto";
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AgentSessionSchema, errorMessage, type Logger } from "@cdktr/protocol";
import type { SyncBatch } from "./sync-batch.js";

/** What `session.json` holds. */
interface SessionRecord {
  session: string;
  /** `/proc/sys/kernel/random/boot_id` when the session began (null where there is none). */
  bootId: string | null;
}

/** This process's session and, when it can be trusted, the previous one on this data directory. */
export interface ClaimedSession {
  session: string;
  /**
   * The session of the previous process on this data directory, when the machine has not
   * restarted since it began (its journal lines were written before its starts, so a page cache
   * that survived holds them all); null otherwise.
   */
  predecessor: string | null;
}

/** The machine's boot id, or null where it cannot be read. */
export function currentBootId(): string | null {
  try {
    const id = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    return id === "" ? null : id;
  } catch {
    return null;
  }
}

function readRecord(path: string): SessionRecord | null {
  try {
    const raw = JSON.parse(readFileSync(path, "utf8")) as Partial<SessionRecord>;
    const session = AgentSessionSchema.safeParse(raw.session);
    if (!session.success) return null;
    return { session: session.data, bootId: typeof raw.bootId === "string" ? raw.bootId : null };
  } catch {
    return null;
  }
}

/**
 * Begin a new session on `dataDir` (hold its lock first): read the previous record, then replace
 * it with this one (fsynced through `sync`). A record that cannot be written is removed instead,
 * so the next process never takes an older session for this one's; if even that fails the next
 * process trusts nothing it finds (see {@link ClaimedSession.predecessor}).
 */
export function claimSession(
  dataDir: string,
  logger: Logger,
  sync: SyncBatch,
  bootId = currentBootId(),
): ClaimedSession {
  const path = join(dataDir, "session.json");
  const previous = readRecord(path);
  const session = randomBytes(12).toString("base64url");
  const record: SessionRecord = { session, bootId };
  try {
    const tmp = `${path}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(record)}\n`, { mode: 0o600 });
    renameSync(tmp, path);
    sync.file(path);
    sync.dir(dataDir);
  } catch (e: unknown) {
    logger.warn("cannot record the agent's session; the next agent process will not vouch for this one's runs", {
      path,
      error: errorMessage(e),
    });
    try {
      rmSync(path, { force: true });
      sync.dir(dataDir);
    } catch {
      /* the next process may read an older session: its journal then lists more runs as started than that session did, never fewer */
    }
  }
  const trusted = previous !== null && bootId !== null && previous.bootId === bootId;
  return { session, predecessor: trusted ? previous.session : null };
}
