import type { WorkflowDefinition } from "@cdktr/protocol";

/**
 * What both stores remember about `workflow_snapshots` (each run executes the definition it was
 * triggered with, stored once per `snapshotKey` of `rows.ts`): the keys known to be committed, so a
 * trigger does not write the definition again, and the parsed definitions by key. Each store
 * adds its own `write`.
 */
export class SnapshotCache {
  private readonly parsed = new Map<string, WorkflowDefinition>();
  /** Snapshot keys known to be committed (cleared whenever that is unsure). */
  protected readonly stored = new Set<string>();

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
