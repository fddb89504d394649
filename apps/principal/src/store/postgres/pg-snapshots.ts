import type { WorkflowDefinition } from "@cdktr/protocol";
import { snapshotKey } from "../rows.js";
import type { Sql } from "./sql.js";

/**
 * The `workflow_snapshots` table on PostgreSQL: each run executes the definition it was triggered
 * with, stored once per key (`snapshotKey` in `../rows.ts`). Keys known to be committed are remembered
 * so a trigger does not send the definition again; parsed definitions are cached by key.
 */
export class PgSnapshots {
  private readonly parsed = new Map<string, WorkflowDefinition>();
  /** Snapshot keys known to be committed (cleared whenever that is unsure). */
  private readonly stored = new Set<string>();

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

  /** Remember that the snapshot `key` of `wf` is stored (call once its command succeeded). */
  remember(key: string, wf: WorkflowDefinition): void {
    this.parsed.set(key, wf);
    this.stored.add(key);
  }

  /** The definition of a stored snapshot, parsed once per key. */
  parse(key: string, definition: string): WorkflowDefinition {
    let wf = this.parsed.get(key);
    if (wf === undefined) {
      wf = JSON.parse(definition) as WorkflowDefinition;
      this.parsed.set(key, wf);
    }
    return wf;
  }

  /** Forget which snapshots are stored (a batch rolled back, or retention deleted some). */
  forgetStored(): void {
    this.stored.clear();
  }
}
