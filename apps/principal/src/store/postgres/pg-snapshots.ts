import type { WorkflowDefinition } from "@cdktr/protocol";
import { snapshotKey } from "../rows.js";
import { SnapshotCache } from "../snapshot-cache.js";
import type { Sql } from "./sql.js";

/** The `workflow_snapshots` table on PostgreSQL: the shared {@link SnapshotCache} plus its write. */
export class PgSnapshots extends SnapshotCache {
  /** Insert the snapshot of `wf` unless it is known to be stored; returns its key. Inside a command. */
  async write(sql: Sql, wf: WorkflowDefinition, now: number): Promise<string> {
    const key = snapshotKey(wf);
    if (!this.stored.has(key)) {
      await sql.run(
        `INSERT INTO workflow_snapshots (hash, workflow_id, definition, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (hash) DO NOTHING`,
        [key, wf.id, JSON.stringify(wf), now],
      );
    }
    return key;
  }
}
