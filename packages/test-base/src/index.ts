/**
 * `@cdktr/test-base`: the test primitives that need no other workspace (so that
 * `@cdktr/protocol`'s own tests can use them): start a built service as a process and wait for
 * its `ready` line, free ports, temp directories, polling, process-group checks. Everything
 * else imports them through `@cdktr/test-utils`, which re-exports this package and adds the
 * cdktr fixture on top.
 */
export { makeTempDir, removeTempDirs } from "./temp-dir.js";
export { freePort, freePorts, reachable, requireServer } from "./ports.js";
export { waitFor, type WaitForOptions } from "./wait-for.js";
export {
  spawnService,
  killAllServices,
  killAllServicesSync,
  type LineListener,
  type ServiceExit,
  type ServiceHandle,
  type SpawnServiceOptions,
} from "./spawn-service.js";
export { groupAlive, killGroups, processAlive, processGone } from "./processes.js";
