/**
 * The messages between the agent and its spawner process (Node's IPC channel, JSON). Only zod is
 * imported here: the spawner process loads this file and stays small.
 */
import { z } from "zod";

/** Agent -> spawner: start one task process. */
export const SpawnRequestSchema = z.object({
  type: z.literal("spawn"),
  /** The agent's number for this request, echoed in every reply about it. */
  id: z.number().int().nonnegative(),
  cmd: z.string().min(1),
  args: z.array(z.string()),
  cwd: z.string().nullable(),
  env: z.record(z.string(), z.string()),
  /**
   * Where to record the task's process group (`<dir>/<pgid>`, as the agent's process-group
   * registry does) right after the spawn, before the agent hears of it: an agent SIGKILLed in
   * between still leaves a record for the next one to reap. Null: no record.
   */
  record: z.object({ dir: z.string().min(1), runId: z.string(), taskId: z.string() }).nullable(),
});
export type SpawnRequest = z.infer<typeof SpawnRequestSchema>;

/** Spawner -> agent. */
export const SpawnerReplySchema = z.discriminatedUnion("type", [
  /** The spawner is up, in its cgroup of origin or waiting in a fresh one (`staged`). */
  z.object({ type: z.literal("ready"), pid: z.number().int().positive() }),
  /**
   * The task process started: carries the read end of its stdout (the handle of this message);
   * `cgroup` is the task cgroup it was started in (null: none, use the /proc marker). Sent once
   * the spawner has left that cgroup, so the agent never kills a cgroup the spawner is in.
   */
  z.object({
    type: z.literal("spawned"),
    id: z.number().int().nonnegative(),
    pid: z.number().int().positive(),
    cgroup: z.string().nullable(),
  }),
  /** The read end of the task's stderr (the handle of this message), right after `spawned`. */
  z.object({ type: z.literal("stderr"), id: z.number().int().nonnegative() }),
  /** The task process could not start; `code` is the errno name (`ENOENT`, `EACCES`...). */
  z.object({
    type: z.literal("failed"),
    id: z.number().int().nonnegative(),
    code: z.string().nullable(),
    message: z.string(),
  }),
  /** The task process (the group's leader) exited. */
  z.object({
    type: z.literal("exit"),
    id: z.number().int().nonnegative(),
    code: z.number().int().nullable(),
    signal: z.string().nullable(),
  }),
  /** Something the agent should log (the spawner has no logger of its own). */
  z.object({ type: z.literal("warn"), message: z.string(), detail: z.record(z.string(), z.string()) }),
]);
export type SpawnerReply = z.infer<typeof SpawnerReplySchema>;

/** The environment variable naming the agent's cgroup v2 subtree for the spawner (absent: no cgroups). */
export const SPAWNER_CGROUP_ENV = "CDKTR_SPAWNER_CGROUP_DIR";
