import type { WorkflowDefinition } from "@cdktr/protocol";
import { snapshotKey } from "../rows.js";
import { SnapshotCache } from "../snapshot-cache.js";
import type { Tables } from "./tables.js";

/** The `workflow_snapshots` table on SQLite: the shared {@link SnapshotCache} plus its write. */
export class WorkflowSnapshots extends SnapshotCache {
  /** Insert the snapshot of `wf` unless it is known to be stored; returns its key. Inside a command. */
  write(tables: Tables, wf: WorkflowDefinition, now: number): string {
    const key = snapshotKey(wf);
    if (!this.stored.has(key)) {
      tables
        .sql("INSERT OR IGNORE INTO workflow_snapshots (hash, workflow_id, definition, created_at) VALUES (?, ?, ?, ?)")
        .run(key, wf.id, JSON.stringify(wf), now);
    }
    return key;
  }
}
