/**
 * What the status outbox carries: the start of each run (`confirmAssignment`, journaled before
 * its first task is spawned), then its run and task transitions, as sent to the principal.
 */
import type { ApiVerbs, RequestOf } from "@cdktr/protocol";

/** One status update, as sent. */
export type StatusUpdate =
  | { verb: "confirmAssignment"; body: RequestOf<ApiVerbs, "confirmAssignment"> }
  | { verb: "runStatus"; body: RequestOf<ApiVerbs, "runStatus"> }
  | { verb: "taskStatus"; body: RequestOf<ApiVerbs, "taskStatus"> };

/** Sends one update; rejects with a `CdktrError` on failure. */
export type StatusSink = (update: StatusUpdate) => Promise<void>;
