import type { WorkflowDefinition } from "@cdktr/protocol";
import { snapshotKey } from "../rows.js";
import type { Tables } from "./tables.js";

/**
 * The `workflow_snapshots` table as the store uses it: each run executes the definition it was
 * triggered with, stored once per key. Parsed definitions are cached by key, and keys known to be
 * committed are remembered so a trigger does not serialise the definition again.
 */
export class WorkflowSnapshots {
  private readonly parsed = new Map<string, WorkflowDefinition>();
  /** Snapshot keys known to be committed (cleared whenever that is unsure). */
  private readonly stored = new Set<string>();

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
